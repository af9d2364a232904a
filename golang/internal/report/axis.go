package report

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// axis maps data values to pixels, linearly or on a log10 scale.
type axis struct {
	log    bool
	lo, hi float64 // the domain; in log10 units on a log axis
	p0, p1 float64 // the pixels of lo and hi
	ticks  []float64
}

// pos returns the pixel of data value v.
func (a *axis) pos(v float64) float64 {
	if a.log {
		v = math.Log10(v)
	}
	return a.p0 + (v-a.lo)/(a.hi-a.lo)*(a.p1-a.p0)
}

// checkValue reports why v cannot be placed on an axis, or nil.
func checkValue(v float64, log bool) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("value %v is not finite", v)
	}
	if log && v <= 0 {
		return fmt.Errorf("value %v cannot go on a log scale", v)
	}
	return nil
}

// newAxis fits an axis to vals. With ticks given, the domain spans the ticks and values, with a
// little room on each side; without, a log axis extends to whole decades and a linear one to
// round numbers, and gets its ticks there. zero makes a linear axis include 0 (bars start at 0).
func newAxis(vals, ticks []float64, log, zero bool, p0, p1 float64) (*axis, error) {
	if len(vals) == 0 {
		return nil, errors.New("no data")
	}
	all := append(append([]float64(nil), vals...), ticks...)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range all {
		if err := checkValue(v, log); err != nil {
			return nil, err
		}
		if log {
			v = math.Log10(v)
		}
		lo, hi = min(lo, v), max(hi, v)
	}
	a := &axis{log: log, p0: p0, p1: p1}
	switch {
	case len(ticks) > 0:
		pad := (hi - lo) * 0.05
		if pad == 0 {
			pad = 0.5
		}
		a.lo, a.hi, a.ticks = lo-pad, hi+pad, ticks
		if !log && zero {
			a.lo = min(a.lo, 0)
		}
	case log:
		a.lo, a.hi = math.Floor(lo), math.Ceil(hi)
		if a.hi == a.lo {
			a.hi++
		}
		step := math.Ceil((a.hi - a.lo) / 8)
		for k := a.lo; k <= a.hi; k += step {
			a.ticks = append(a.ticks, math.Pow(10, k))
		}
	default:
		if zero {
			lo, hi = min(lo, 0), max(hi, 0)
		}
		if hi == lo {
			hi = lo + 1
		}
		step := niceStep((hi - lo) / 5)
		a.lo, a.hi = math.Floor(lo/step)*step, math.Ceil(hi/step)*step
		for k := a.lo; k <= a.hi+step/2; k += step {
			a.ticks = append(a.ticks, k)
		}
	}
	return a, nil
}

// niceStep rounds a rough tick step up to 1, 2 or 5 times a power of ten.
func niceStep(rough float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(rough)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= rough {
			return m * p
		}
	}
	return 10 * p
}

// SI formats v with three significant digits and an SI suffix: 950, 1.2k, 34M, 5G, 0.05.
func SI(v float64) string {
	av := math.Abs(v)
	for _, u := range []struct {
		f float64
		s string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if av >= u.f {
			return strconv.FormatFloat(v/u.f, 'g', 3, 64) + u.s
		}
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// Bytes formats a byte count in binary units: 64 B, 4 KiB, 1.5 MiB.
func Bytes(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for math.Abs(v) >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return strconv.FormatFloat(v, 'g', 4, 64) + " " + units[i]
}
