// Package report writes the ferry demo's results with the standard library only: aligned text
// tables for the terminal, a Markdown document, and SVG line and bar charts (log or linear axes).
package report

import (
	"strings"
	"unicode/utf8"
)

// Table is a table of strings: a header row and body rows. A column whose body cells all look like
// numbers (see numeric) is right-aligned, in text and in Markdown; empty cells and placeholders
// ("—", "-") do not count.
type Table struct {
	Header []string
	Rows   [][]string
}

// AddRow appends a body row.
func (t *Table) AddRow(cells ...string) {
	t.Rows = append(t.Rows, cells)
}

// cols returns the number of columns: the longest row, header included.
func (t *Table) cols() int {
	n := len(t.Header)
	for _, r := range t.Rows {
		n = max(n, len(r))
	}
	return n
}

// cell returns row r's cell in column c, or "" when the row is short.
func cell(r []string, c int) string {
	if c < len(r) {
		return r[c]
	}
	return ""
}

// rightAligned reports, per column, whether every non-empty body cell is numeric.
func (t *Table) rightAligned() []bool {
	right := make([]bool, t.cols())
	for c := range right {
		seen := false
		right[c] = true
		for _, r := range t.Rows {
			s := cell(r, c)
			if s == "" || s == "—" || s == "-" {
				continue
			}
			seen = true
			if !numeric(s) {
				right[c] = false
				break
			}
		}
		right[c] = right[c] && seen
	}
	return right
}

// numeric reports whether s starts like a number: a digit, or a sign or point then a digit.
func numeric(s string) bool {
	s = strings.TrimLeft(s, "+-.")
	return s != "" && s[0] >= '0' && s[0] <= '9'
}

// Text returns the table as aligned plain text: columns separated by two spaces, a rule of dashes
// under the header, and no trailing spaces.
func (t *Table) Text() string {
	n := t.cols()
	width := make([]int, n)
	for c := range n {
		width[c] = utf8.RuneCountInString(cell(t.Header, c))
		for _, r := range t.Rows {
			width[c] = max(width[c], utf8.RuneCountInString(cell(r, c)))
		}
	}
	right := t.rightAligned()
	var b strings.Builder
	line := func(r []string) {
		var l strings.Builder
		for c := range n {
			if c > 0 {
				l.WriteString("  ")
			}
			s := cell(r, c)
			pad := strings.Repeat(" ", width[c]-utf8.RuneCountInString(s))
			if right[c] {
				l.WriteString(pad + s)
			} else {
				l.WriteString(s + pad)
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " "))
		b.WriteByte('\n')
	}
	line(t.Header)
	rule := make([]string, n)
	for c := range n {
		rule[c] = strings.Repeat("-", width[c])
	}
	line(rule)
	for _, r := range t.Rows {
		line(r)
	}
	return b.String()
}

// Markdown returns the table in GitHub Markdown, with '|' in cells escaped and numeric columns
// right-aligned.
func (t *Table) Markdown() string {
	n := t.cols()
	right := t.rightAligned()
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for c := range n {
			b.WriteString(" " + mdEscapeCell(cell(cells, c)) + " |")
		}
		b.WriteByte('\n')
	}
	line(t.Header)
	b.WriteString("|")
	for c := range n {
		if right[c] {
			b.WriteString(" ---: |")
		} else {
			b.WriteString(" --- |")
		}
	}
	b.WriteByte('\n')
	for _, r := range t.Rows {
		line(r)
	}
	return b.String()
}

// mdEscapeCell makes s safe inside a Markdown table cell: pipes escaped, newlines as spaces.
func mdEscapeCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}
