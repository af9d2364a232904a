package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// Chart geometry, in pixels.
const (
	chartW       = 760
	chartH       = 440
	marginLeft   = 78
	marginRight  = 190 // room for the legend
	marginTop    = 44
	marginBottom = 62
)

// palette is a colour-blind-safe set (Okabe and Ito); series take colours in order.
var palette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"}

// Point is one data point of a line series.
type Point struct {
	X, Y float64
}

// Series is a named line of points, drawn in order.
type Series struct {
	Name   string
	Points []Point
	// Dashed draws the line dashed (to tell apart related series).
	Dashed bool
}

// LineChart is a chart of lines with markers. Each axis is linear or log10. The zero value of the
// formats is SI; XTicks, when set, replace the automatic ticks (on a log axis, the automatic
// ticks are whole decades).
type LineChart struct {
	Title, XLabel, YLabel string
	LogX, LogY            bool
	XTicks                []float64
	XFormat, YFormat      func(float64) string
	Series                []Series
}

// BarChart is a grouped bar chart: one group per category along x, one bar per series in each
// group. A log y axis needs positive values; bars then rise from the bottom decade.
type BarChart struct {
	Title, YLabel string
	LogY          bool
	YFormat       func(float64) string
	Categories    []string
	Series        []BarSeries
}

// BarSeries is a named set of bar heights, one per category; NaN leaves the bar out.
type BarSeries struct {
	Name   string
	Values []float64
}

// svgw writes SVG elements; attribute values and text are escaped.
type svgw struct {
	b bytes.Buffer
}

func (w *svgw) raw(s string) { w.b.WriteString(s) }

// elem writes <name attr="v" ...>text</name>, or a self-closed element when text is "".
// attrs alternate names and values.
func (w *svgw) elem(name, text string, attrs ...string) {
	w.b.WriteString("<" + name)
	for i := 0; i+1 < len(attrs); i += 2 {
		w.b.WriteString(" " + attrs[i] + `="`)
		xml.EscapeText(&w.b, []byte(attrs[i+1]))
		w.b.WriteString(`"`)
	}
	if text == "" {
		w.b.WriteString("/>\n")
		return
	}
	w.b.WriteString(">")
	xml.EscapeText(&w.b, []byte(text))
	w.b.WriteString("</" + name + ">\n")
}

// num formats a pixel coordinate.
func num(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

// data formats a data value exactly, for the data-x and data-y attributes that tools and tests
// read back.
func data(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func (w *svgw) header(title string) {
	w.raw(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	fmt.Fprintf(&w.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartW, chartH, chartW, chartH)
	w.elem("rect", "", "width", "100%", "height", "100%", "fill", "white")
	w.elem("text", title, "x", num((marginLeft+chartW-marginRight)/2.0), "y", "24", "text-anchor", "middle",
		"font-size", "15", "font-weight", "bold")
}

// yAxis draws the horizontal grid lines, the tick labels and the y label.
func (w *svgw) yAxis(y *axis, label string, format func(float64) string) {
	w.raw(`<g class="y-axis">` + "\n")
	for _, t := range y.ticks {
		py := num(y.pos(t))
		w.elem("line", "", "x1", num(marginLeft), "x2", num(chartW-marginRight), "y1", py, "y2", py,
			"stroke", "#dddddd")
		w.elem("text", format(t), "class", "tick", "x", num(marginLeft-6), "y", py, "text-anchor", "end",
			"dominant-baseline", "middle", "data-value", data(t))
	}
	cy := num((marginTop + chartH - marginBottom) / 2.0)
	w.elem("text", label, "x", "16", "y", cy, "text-anchor", "middle", "transform", "rotate(-90 16 "+cy+")")
	w.raw("</g>\n")
}

// frame draws the plot area's border.
func (w *svgw) frame() {
	w.elem("rect", "", "x", num(marginLeft), "y", num(marginTop), "width", num(chartW-marginLeft-marginRight),
		"height", num(chartH-marginTop-marginBottom), "fill", "none", "stroke", "#444444")
}

// legend draws one entry per name, right of the plot area.
func (w *svgw) legend(names []string, dashed []bool, bars bool) {
	w.raw(`<g class="legend">` + "\n")
	x := float64(chartW - marginRight + 14)
	for i, n := range names {
		y := float64(marginTop + 10 + 20*i)
		c := palette[i%len(palette)]
		if bars {
			w.elem("rect", "", "x", num(x), "y", num(y-6), "width", "18", "height", "12", "fill", c)
		} else {
			attrs := []string{"x1", num(x), "x2", num(x + 18), "y1", num(y), "y2", num(y), "stroke", c, "stroke-width", "2"}
			if dashed[i] {
				attrs = append(attrs, "stroke-dasharray", "5 3")
			}
			w.elem("line", "", attrs...)
		}
		w.elem("text", n, "x", num(x+24), "y", num(y), "dominant-baseline", "middle")
	}
	w.raw("</g>\n")
}

func orSI(f func(float64) string) func(float64) string {
	if f == nil {
		return SI
	}
	return f
}

// WriteSVG writes the chart as a standalone SVG document. It fails, writing nothing, when there
// are no points, a value is not finite, or a log axis gets a value <= 0.
func (c *LineChart) WriteSVG(out io.Writer) error {
	var xs, ys []float64
	for _, s := range c.Series {
		for _, p := range s.Points {
			xs, ys = append(xs, p.X), append(ys, p.Y)
		}
	}
	x, err := newAxis(xs, c.XTicks, c.LogX, false, marginLeft, chartW-marginRight)
	if err != nil {
		return fmt.Errorf("x axis: %w", err)
	}
	y, err := newAxis(ys, nil, c.LogY, false, chartH-marginBottom, marginTop)
	if err != nil {
		return fmt.Errorf("y axis: %w", err)
	}
	xf, yf := orSI(c.XFormat), orSI(c.YFormat)
	var w svgw
	w.header(c.Title)
	w.yAxis(y, c.YLabel, yf)
	w.raw(`<g class="x-axis">` + "\n")
	for _, t := range x.ticks {
		px := num(x.pos(t))
		w.elem("line", "", "x1", px, "x2", px, "y1", num(marginTop), "y2", num(chartH-marginBottom), "stroke", "#dddddd")
		w.elem("text", xf(t), "class", "tick", "x", px, "y", num(chartH-marginBottom+16), "text-anchor", "middle",
			"data-value", data(t))
	}
	w.elem("text", c.XLabel, "x", num((marginLeft+chartW-marginRight)/2.0), "y", num(chartH-16), "text-anchor", "middle")
	w.raw("</g>\n")
	w.frame()
	names, dashed := make([]string, len(c.Series)), make([]bool, len(c.Series))
	for i, s := range c.Series {
		names[i], dashed[i] = s.Name, s.Dashed
		col := palette[i%len(palette)]
		w.raw(`<g class="series">` + "\n")
		var pts bytes.Buffer
		for j, p := range s.Points {
			if j > 0 {
				pts.WriteByte(' ')
			}
			pts.WriteString(num(x.pos(p.X)) + "," + num(y.pos(p.Y)))
		}
		attrs := []string{"fill", "none", "stroke", col, "stroke-width", "2", "points", pts.String()}
		if s.Dashed {
			attrs = append(attrs, "stroke-dasharray", "5 3")
		}
		w.elem("polyline", "", attrs...)
		for _, p := range s.Points {
			w.elem("circle", "", "cx", num(x.pos(p.X)), "cy", num(y.pos(p.Y)), "r", "3.5", "fill", col,
				"data-series", s.Name, "data-x", data(p.X), "data-y", data(p.Y))
		}
		w.raw("</g>\n")
	}
	w.legend(names, dashed, false)
	w.raw("</svg>\n")
	_, err = out.Write(w.b.Bytes())
	return err
}

// WriteSVG writes the chart as a standalone SVG document, with each bar's value printed above it.
// It fails, writing nothing, when there is no category or value, a series has a different number
// of values than there are categories, a value is infinite, or a log axis gets a value <= 0.
func (c *BarChart) WriteSVG(out io.Writer) error {
	if len(c.Categories) == 0 {
		return errors.New("bar chart: no categories")
	}
	var vals []float64
	for _, s := range c.Series {
		if len(s.Values) != len(c.Categories) {
			return fmt.Errorf("bar chart: series %q has %d values for %d categories", s.Name, len(s.Values), len(c.Categories))
		}
		for _, v := range s.Values {
			if !math.IsNaN(v) {
				vals = append(vals, v)
			}
		}
	}
	y, err := newAxis(vals, nil, c.LogY, true, chartH-marginBottom, marginTop)
	if err != nil {
		return fmt.Errorf("y axis: %w", err)
	}
	yf := orSI(c.YFormat)
	var w svgw
	w.header(c.Title)
	w.yAxis(y, c.YLabel, yf)
	plotW := float64(chartW - marginLeft - marginRight)
	groupW := plotW / float64(len(c.Categories))
	barW := groupW * 0.8 / float64(max(len(c.Series), 1))
	base := float64(chartH - marginBottom)
	if !c.LogY {
		base = y.pos(0)
	}
	w.raw(`<g class="x-axis">` + "\n")
	for i, cat := range c.Categories {
		w.elem("text", cat, "class", "tick", "x", num(marginLeft+groupW*(float64(i)+0.5)), "y", num(chartH-marginBottom+16),
			"text-anchor", "middle")
	}
	w.raw("</g>\n")
	w.frame()
	names := make([]string, len(c.Series))
	for si, s := range c.Series {
		names[si] = s.Name
		col := palette[si%len(palette)]
		w.raw(`<g class="series">` + "\n")
		for i, v := range s.Values {
			if math.IsNaN(v) {
				continue
			}
			x0 := marginLeft + groupW*(float64(i)+0.1) + barW*float64(si)
			top := y.pos(v)
			w.elem("rect", "", "class", "bar", "x", num(x0), "y", num(min(top, base)), "width", num(barW),
				"height", num(math.Abs(base-top)), "fill", col, "data-series", s.Name, "data-category", c.Categories[i],
				"data-value", data(v))
			w.elem("text", yf(v), "x", num(x0+barW/2), "y", num(min(top, base)-4), "text-anchor", "middle", "font-size", "11")
		}
		w.raw("</g>\n")
	}
	w.legend(names, make([]bool, len(names)), true)
	w.raw("</svg>\n")
	_, err = out.Write(w.b.Bytes())
	return err
}
