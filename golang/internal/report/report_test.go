package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// node is an element of a decoded SVG: its name, attributes and text.
type node struct {
	name  string
	attrs map[string]string
	text  string
}

// decodeSVG parses doc with encoding/xml, failing the test on any syntax error, checks the root is
// an <svg> in the SVG namespace, and returns every element in document order.
func decodeSVG(t *testing.T, doc []byte) []node {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var nodes []node
	var stack []int
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, doc)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := node{name: tok.Name.Local, attrs: map[string]string{}}
			for _, a := range tok.Attr {
				n.attrs[a.Name.Local] = a.Value
			}
			if len(nodes) == 0 && (n.name != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg") {
				t.Fatalf("root element is {%s}%s, want an svg element in the SVG namespace", tok.Name.Space, n.name)
			}
			nodes = append(nodes, n)
			stack = append(stack, len(nodes)-1)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				nodes[stack[len(stack)-1]].text += string(tok)
			}
		}
	}
	if len(nodes) == 0 {
		t.Fatal("empty SVG")
	}
	return nodes
}

func fattr(t *testing.T, n node, name string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(n.attrs[name], 64)
	if err != nil {
		t.Fatalf("<%s %s=%q>: %v", n.name, name, n.attrs[name], err)
	}
	return v
}

// markers returns the chart's circles for series name, in document order.
func markers(nodes []node, series string) []node {
	var out []node
	for _, n := range nodes {
		if n.name == "circle" && n.attrs["data-series"] == series {
			out = append(out, n)
		}
	}
	return out
}

func render(t *testing.T, c interface{ WriteSVG(io.Writer) error }) []node {
	t.Helper()
	var b bytes.Buffer
	if err := c.WriteSVG(&b); err != nil {
		t.Fatalf("WriteSVG: %v", err)
	}
	return decodeSVG(t, b.Bytes())
}

var sizes = []float64{64, 1 << 10, 16 << 10, 256 << 10, 4 << 20, 64 << 20}

func TestLineChartLogLogPlacement(t *testing.T) {
	var zc, cp []Point
	for _, s := range sizes {
		zc = append(zc, Point{s, 200})   // flat: constant time
		cp = append(cp, Point{s, s / 8}) // linear in size
	}
	nodes := render(t, &LineChart{
		Title: "ns per frame", XLabel: "frame size", YLabel: "ns", LogX: true, LogY: true,
		XTicks: sizes, XFormat: Bytes,
		Series: []Series{{Name: "zero-copy", Points: zc}, {Name: "copy", Points: cp, Dashed: true}},
	})
	c := markers(nodes, "copy")
	if len(c) != len(sizes) {
		t.Fatalf("%d markers for series copy, want %d", len(c), len(sizes))
	}
	// The sizes grow by 16x each step: on a log x axis the markers are evenly spaced, left to right.
	// y = x/8 grows by the same factor, so on a log y axis the steps are even too, going up (SVG y
	// grows downwards).
	dx0 := fattr(t, c[1], "cx") - fattr(t, c[0], "cx")
	dy0 := fattr(t, c[1], "cy") - fattr(t, c[0], "cy")
	if dx0 <= 0 || dy0 >= 0 {
		t.Fatalf("first step dx=%v dy=%v, want dx > 0 and dy < 0", dx0, dy0)
	}
	for i := 1; i < len(c); i++ {
		dx := fattr(t, c[i], "cx") - fattr(t, c[i-1], "cx")
		dy := fattr(t, c[i], "cy") - fattr(t, c[i-1], "cy")
		if math.Abs(dx-dx0) > 0.02 || math.Abs(dy-dy0) > 0.02 {
			t.Errorf("step %d: dx=%.2f dy=%.2f, want %.2f %.2f (even steps on a log scale)", i, dx, dy, dx0, dy0)
		}
		if got, want := fattr(t, c[i], "data-x"), sizes[i]; got != want {
			t.Errorf("marker %d data-x=%v, want %v", i, got, want)
		}
	}
	// A flat series is a horizontal line.
	z := markers(nodes, "zero-copy")
	for i := range z {
		if fattr(t, z[i], "cy") != fattr(t, z[0], "cy") {
			t.Errorf("zero-copy marker %d at cy=%v, want %v", i, fattr(t, z[i], "cy"), fattr(t, z[0], "cy"))
		}
	}
	// The log x axis has the given ticks, labelled in binary units, at the markers' x.
	var xticks []node
	for _, n := range nodes {
		if n.name == "text" && n.attrs["class"] == "tick" && n.attrs["text-anchor"] == "middle" {
			xticks = append(xticks, n)
		}
	}
	if len(xticks) != len(sizes) {
		t.Fatalf("%d x ticks, want %d", len(xticks), len(sizes))
	}
	if xticks[0].text != "64 B" || xticks[5].text != "64 MiB" {
		t.Errorf("x tick labels %q .. %q, want 64 B .. 64 MiB", xticks[0].text, xticks[5].text)
	}
	for i := range xticks {
		if fattr(t, xticks[i], "x") != fattr(t, c[i], "cx") {
			t.Errorf("tick %q at x=%v, marker at %v", xticks[i].text, fattr(t, xticks[i], "x"), fattr(t, c[i], "cx"))
		}
	}
	// All markers lie inside the plot area.
	for _, n := range append(c, z...) {
		x, y := fattr(t, n, "cx"), fattr(t, n, "cy")
		if x < marginLeft || x > chartW-marginRight || y < marginTop || y > chartH-marginBottom {
			t.Errorf("marker (%v, %v) outside the plot area", x, y)
		}
	}
}

func TestLogAxisDecadeTicks(t *testing.T) {
	nodes := render(t, &LineChart{LogY: true, Series: []Series{{Name: "s", Points: []Point{{1, 3}, {2, 4500}}}}})
	var vals []float64
	var ys []float64
	for _, n := range nodes {
		if n.name == "text" && n.attrs["class"] == "tick" && n.attrs["text-anchor"] == "end" {
			vals = append(vals, fattr(t, n, "data-value"))
			ys = append(ys, fattr(t, n, "y"))
		}
	}
	want := []float64{1, 10, 100, 1000, 10000}
	if len(vals) != len(want) {
		t.Fatalf("y ticks %v, want %v", vals, want)
	}
	for i := range want {
		if math.Abs(vals[i]-want[i]) > 1e-9*want[i] {
			t.Errorf("y tick %d = %v, want %v", i, vals[i], want[i])
		}
	}
	for i := 2; i < len(ys); i++ {
		if ys[i] >= ys[i-1] || math.Abs((ys[i-1]-ys[i])-(ys[0]-ys[1])) > 0.02 {
			t.Errorf("decade ticks at y=%v: want evenly spaced, going up", ys)
		}
	}
	// 3 and 4500 lie inside the decades 1..10^4.
	s := markers(nodes, "s")
	if y0, y1 := fattr(t, s[0], "cy"), fattr(t, s[1], "cy"); !(y0 < ys[0] && y0 > ys[1] && y1 < ys[3] && y1 > ys[4]) {
		t.Errorf("markers at y=%v and %v, outside their decades %v", y0, y1, ys)
	}
}

func TestLinearAxisNiceTicks(t *testing.T) {
	nodes := render(t, &LineChart{Series: []Series{{Name: "s", Points: []Point{{0, 0.3}, {10, 7.2}}}}})
	var vals []float64
	for _, n := range nodes {
		if n.name == "text" && n.attrs["class"] == "tick" && n.attrs["text-anchor"] == "end" {
			vals = append(vals, fattr(t, n, "data-value"))
		}
	}
	if !sort.Float64sAreSorted(vals) || vals[0] > 0.3 || vals[len(vals)-1] < 7.2 || len(vals) < 4 || len(vals) > 12 {
		t.Errorf("linear y ticks %v: want 4..12 sorted ticks covering 0.3..7.2", vals)
	}
}

func TestLogRejectsNonPositive(t *testing.T) {
	for _, pts := range [][]Point{{{0, 1}}, {{1, -1}}, {{1, math.NaN()}}, {{math.Inf(1), 1}}} {
		var b bytes.Buffer
		err := (&LineChart{LogX: true, LogY: true, Series: []Series{{Name: "s", Points: pts}}}).WriteSVG(&b)
		if err == nil {
			t.Errorf("points %v on log axes: no error", pts)
		}
		if b.Len() != 0 {
			t.Errorf("points %v: %d bytes written on error", pts, b.Len())
		}
	}
	if err := (&LineChart{}).WriteSVG(io.Discard); err == nil {
		t.Error("chart with no data: no error")
	}
}

func TestTextIsEscaped(t *testing.T) {
	title := `copy <vs> "zero-copy" & more`
	nodes := render(t, &LineChart{Title: title, XLabel: "a<b", Series: []Series{{Name: "x&y", Points: []Point{{1, 1}, {2, 2}}}}})
	found := map[string]bool{}
	for _, n := range nodes {
		found[n.text] = true
	}
	for _, s := range []string{title, "a<b", "x&y"} {
		if !found[s] {
			t.Errorf("text %q not found after a round trip through XML", s)
		}
	}
	if m := markers(nodes, "x&y"); len(m) != 2 {
		t.Errorf("%d markers with data-series x&y, want 2", len(m))
	}
}

func bars(nodes []node) []node {
	var out []node
	for _, n := range nodes {
		if n.name == "rect" && n.attrs["class"] == "bar" {
			out = append(out, n)
		}
	}
	return out
}

func TestBarChartLinear(t *testing.T) {
	nodes := render(t, &BarChart{
		Title: "completions per second", YLabel: "per s",
		Categories: []string{"per item", "batch 16", "batch 256"},
		Series:     []BarSeries{{Name: "wait", Values: []float64{1e6, 8e6, 2e7}}, {Name: "sink", Values: []float64{2e6, math.NaN(), 3e7}}},
	})
	bs := bars(nodes)
	if len(bs) != 5 {
		t.Fatalf("%d bars, want 5 (one NaN left out)", len(bs))
	}
	// Heights are proportional to the values and all bars stand on the same baseline.
	k := fattr(t, bs[4], "height") / 3e7 // the tallest bar, for the least rounding
	base := fattr(t, bs[0], "y") + fattr(t, bs[0], "height")
	for _, b := range bs {
		v := fattr(t, b, "data-value")
		if h := fattr(t, b, "height"); math.Abs(h-k*v) > 0.05 {
			t.Errorf("bar %s/%s: height %v, want %v", b.attrs["data-series"], b.attrs["data-category"], h, k*v)
		}
		if got := fattr(t, b, "y") + fattr(t, b, "height"); math.Abs(got-base) > 0.02 {
			t.Errorf("bar %s/%s ends at %v, want baseline %v", b.attrs["data-series"], b.attrs["data-category"], got, base)
		}
	}
	// Groups go left to right in category order, and series in order within a group.
	for i := 1; i < 3; i++ {
		if fattr(t, bs[i], "x") <= fattr(t, bs[i-1], "x") {
			t.Errorf("bar %d left of bar %d", i, i-1)
		}
	}
	if fattr(t, bs[3], "x") <= fattr(t, bs[0], "x") || fattr(t, bs[3], "x") >= fattr(t, bs[1], "x") {
		t.Errorf("second series' first bar at x=%v, want between %v and %v", fattr(t, bs[3], "x"), fattr(t, bs[0], "x"), fattr(t, bs[1], "x"))
	}
}

func TestBarChartLogOrders(t *testing.T) {
	vals := []float64{3e5, 3e6, 3e7}
	nodes := render(t, &BarChart{LogY: true, Categories: []string{"a", "b", "c"}, Series: []BarSeries{{Name: "s", Values: vals}}})
	bs := bars(nodes)
	if len(bs) != 3 {
		t.Fatalf("%d bars, want 3", len(bs))
	}
	// Each value is 10x the last: on a log axis each bar is taller by the same number of pixels.
	d := fattr(t, bs[1], "height") - fattr(t, bs[0], "height")
	if d <= 0 || math.Abs(fattr(t, bs[2], "height")-fattr(t, bs[1], "height")-d) > 0.02 {
		t.Errorf("bar heights %v %v %v: want growing by equal steps", fattr(t, bs[0], "height"), fattr(t, bs[1], "height"), fattr(t, bs[2], "height"))
	}
}

func TestBarChartErrors(t *testing.T) {
	cases := []*BarChart{
		{},
		{Categories: []string{"a"}, Series: []BarSeries{{Name: "s", Values: []float64{1, 2}}}},
		{Categories: []string{"a"}, LogY: true, Series: []BarSeries{{Name: "s", Values: []float64{0}}}},
		{Categories: []string{"a"}, Series: []BarSeries{{Name: "s", Values: []float64{math.Inf(1)}}}},
		{Categories: []string{"a"}, Series: []BarSeries{{Name: "s", Values: []float64{math.NaN()}}}},
	}
	for i, c := range cases {
		if err := c.WriteSVG(io.Discard); err == nil {
			t.Errorf("case %d: no error", i)
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrorIsReturned(t *testing.T) {
	err := (&LineChart{Series: []Series{{Name: "s", Points: []Point{{1, 1}}}}}).WriteSVG(failWriter{})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("WriteSVG to a failing writer: %v, want the write error", err)
	}
}

func TestTableText(t *testing.T) {
	tb := &Table{Header: []string{"path", "size", "GB/s", "note"}}
	tb.AddRow("zero-copy", "64 B", "0.5", "small")
	tb.AddRow("copy", "64 MiB", "12.25", "µs×")
	got := tb.Text()
	// Numeric columns (size, GB/s) are right-aligned, their headers too; widths count runes.
	want := "" +
		"path         size   GB/s  note\n" +
		"---------  ------  -----  -----\n" +
		"zero-copy    64 B    0.5  small\n" +
		"copy       64 MiB  12.25  µs×\n"
	if got != want {
		t.Errorf("Text():\n%s\nwant:\n%s", got, want)
	}
}

func TestTableMarkdown(t *testing.T) {
	tb := &Table{Header: []string{"name", "n"}}
	tb.AddRow("a|b", "12")
	tb.AddRow("two\nlines", "-3")
	tb.AddRow("none", "—")
	got := tb.Markdown()
	want := "| name | n |\n| --- | ---: |\n| a\\|b | 12 |\n| two lines | -3 |\n| none | — |\n"
	if got != want {
		t.Errorf("Markdown():\n%s\nwant:\n%s", got, want)
	}
}

func TestDoc(t *testing.T) {
	var d Doc
	d.Heading(1, "Report")
	d.Para("Some text.")
	d.List("one", "two")
	d.Image("chart [1]", "chart.svg")
	d.Code("a\nb\n")
	want := "# Report\n\nSome text.\n\n- one\n- two\n\n![chart \\[1\\]](chart.svg)\n\n```\na\nb\n```\n\n"
	if got := d.String(); got != want {
		t.Errorf("Doc:\n%q\nwant:\n%q", got, want)
	}
}

func TestFormats(t *testing.T) {
	for _, c := range []struct {
		v    float64
		si   string
		byts string
	}{
		{64, "64", "64 B"},
		{1024, "1.02k", "1 KiB"},
		{1536, "1.54k", "1.5 KiB"},
		{64 << 20, "67.1M", "64 MiB"},
		{2.5e9, "2.5G", "2.328 GiB"},
		{0.05, "0.05", "0.05 B"},
	} {
		if got := SI(c.v); got != c.si {
			t.Errorf("SI(%v) = %q, want %q", c.v, got, c.si)
		}
		if got := Bytes(c.v); got != c.byts {
			t.Errorf("Bytes(%v) = %q, want %q", c.v, got, c.byts)
		}
	}
}

func TestMachine(t *testing.T) {
	m := ThisMachine()
	if m.CPUs < 1 || m.GoVersion == "" || !strings.Contains(m.String(), m.GoVersion) {
		t.Errorf("ThisMachine() = %+v, %q", m, m.String())
	}
}
