package report

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// Doc builds a Markdown document block by block; each method adds one block followed by a blank
// line.
type Doc struct {
	b strings.Builder
}

// Heading adds a heading of the given level (clamped to 1..6).
func (d *Doc) Heading(level int, text string) {
	level = min(max(level, 1), 6)
	fmt.Fprintf(&d.b, "%s %s\n\n", strings.Repeat("#", level), oneLine(text))
}

// Para adds a paragraph.
func (d *Doc) Para(text string) {
	d.b.WriteString(strings.TrimSpace(text) + "\n\n")
}

// List adds a bulleted list, one item per argument.
func (d *Doc) List(items ...string) {
	for _, it := range items {
		d.b.WriteString("- " + oneLine(it) + "\n")
	}
	d.b.WriteString("\n")
}

// Table adds a table.
func (d *Doc) Table(t *Table) {
	d.b.WriteString(t.Markdown() + "\n")
}

// Image adds an image with alt text; path is relative to the document.
func (d *Doc) Image(alt, path string) {
	fmt.Fprintf(&d.b, "![%s](%s)\n\n", strings.NewReplacer("[", `\[`, "]", `\]`).Replace(oneLine(alt)), path)
}

// Code adds a fenced code block.
func (d *Doc) Code(text string) {
	d.b.WriteString("```\n" + strings.TrimRight(text, "\n") + "\n```\n\n")
}

// String returns the document.
func (d *Doc) String() string {
	return d.b.String()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Machine describes the computer and toolchain a run happened on.
type Machine struct {
	CPUs      int    // runtime.NumCPU
	MaxProcs  int    // GOMAXPROCS
	CPUModel  string // from /proc/cpuinfo, "" when unknown
	GoVersion string
	OS, Arch  string
	Date      time.Time
}

// ThisMachine returns the Machine the program runs on, dated now.
func ThisMachine() Machine {
	return Machine{
		CPUs:      runtime.NumCPU(),
		MaxProcs:  runtime.GOMAXPROCS(0),
		CPUModel:  cpuModel(),
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS,
		Arch:      runtime.GOARCH,
		Date:      time.Now(),
	}
}

// String is a one-line description, e.g. "2 CPUs (GOMAXPROCS 2), Intel Xeon ..., go1.26 linux/amd64".
func (m Machine) String() string {
	s := fmt.Sprintf("%d CPUs (GOMAXPROCS %d)", m.CPUs, m.MaxProcs)
	if m.CPUModel != "" {
		s += ", " + m.CPUModel
	}
	return s + fmt.Sprintf(", %s %s/%s", m.GoVersion, m.OS, m.Arch)
}

// cpuModel reads the first "model name" line of /proc/cpuinfo (Linux); "" elsewhere.
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return oneLine(v)
		}
	}
	return ""
}
