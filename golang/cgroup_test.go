package ferry

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeRoot writes files (path relative to the root: content) into a new directory.
func fakeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const (
	mountV2     = "41 31 0:38 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
	mountHybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" +
		"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n" +
		"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
)

func TestCgroupMemoryLimitParsing(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string
		want  int64
	}{
		{"v2: the process's own memory.max", map[string]string{
			"proc/self/cgroup":                               "0::/app.slice/web.service\n",
			"proc/self/mountinfo":                            mountV2,
			"sys/fs/cgroup/app.slice/web.service/memory.max": "536870912\n",
			"sys/fs/cgroup/app.slice/memory.max":             "max\n",
		}, 512 * mib},
		{"v2: a parent's lower limit binds", map[string]string{
			"proc/self/cgroup":                               "0::/app.slice/web.service\n",
			"proc/self/mountinfo":                            mountV2,
			"sys/fs/cgroup/app.slice/web.service/memory.max": "max\n",
			"sys/fs/cgroup/app.slice/memory.max":             "268435456\n",
		}, 256 * mib},
		{"v2: no limit anywhere", map[string]string{
			"proc/self/cgroup":                   "0::/app.slice\n",
			"proc/self/mountinfo":                mountV2,
			"sys/fs/cgroup/app.slice/memory.max": "max\n",
		}, 0},
		{"v2: a cgroup namespace (the process sees itself at the root)", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"proc/self/mountinfo":      mountV2,
			"sys/fs/cgroup/memory.max": "1073741824\n",
		}, 1 << 30},
		{"v2: a container's cgroup bind-mounted at the mount point", map[string]string{
			"proc/self/cgroup":         "0::/docker/abc\n",
			"proc/self/mountinfo":      "50 40 0:38 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n",
			"sys/fs/cgroup/memory.max": "402653184\n",
		}, 384 * mib},
		{"v2: a mount that does not reach the cgroup", map[string]string{
			"proc/self/cgroup":         "0::/other\n",
			"proc/self/mountinfo":      "50 40 0:38 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n",
			"sys/fs/cgroup/memory.max": "402653184\n",
		}, 0},
		{"v2: an escaped space in the mount point", map[string]string{
			"proc/self/cgroup":        "0::/a\n",
			"proc/self/mountinfo":     "41 31 0:38 / /mnt/cg\\040two rw - cgroup2 cgroup2 rw\n",
			"mnt/cg two/a/memory.max": "104857600\n",
		}, 100 * mib},
		{"hybrid: the memory controller is v1's", map[string]string{
			"proc/self/cgroup":    "4:memory:/process_api/x\n3:cpuset:/\n0::/\n",
			"proc/self/mountinfo": mountHybrid,
			"sys/fs/cgroup/memory/process_api/x/memory.limit_in_bytes": "805306368\n",
			"sys/fs/cgroup/memory/process_api/memory.limit_in_bytes":   "9223372036854771712\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes":               "9223372036854771712\n",
			"sys/fs/cgroup/unified/memory.max":                         "1048576\n",
		}, 768 * mib},
		{"v1: unlimited", map[string]string{
			"proc/self/cgroup":                             "4:memory:/x\n",
			"proc/self/mountinfo":                          mountHybrid,
			"sys/fs/cgroup/memory/x/memory.limit_in_bytes": "9223372036854771712\n",
		}, 0},
		{"malformed limit files", map[string]string{
			"proc/self/cgroup":             "0::/a/b\n",
			"proc/self/mountinfo":          mountV2,
			"sys/fs/cgroup/a/b/memory.max": "lots\n",
			"sys/fs/cgroup/a/memory.max":   "-5\n",
		}, 0},
		{"no /proc/self/cgroup", map[string]string{"proc/self/mountinfo": mountV2}, 0},
		{"no cgroup mount", map[string]string{
			"proc/self/cgroup":    "0::/a\n",
			"proc/self/mountinfo": "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n",
		}, 0},
		{"garbage lines", map[string]string{
			"proc/self/cgroup":    "junk\n::\n0::relative\n",
			"proc/self/mountinfo": "junk - \n - \n1 2 3\n",
		}, 0},
	} {
		if got := cgroupMemoryLimitAt(fakeRoot(t, c.files)); got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, got, c.want)
		}
	}
}

// cgroupChildLimit is the memory limit of the cgroup TestBudgetCgroup makes: the default soft
// limit derived from it is 64 MiB (a quarter), the hard limit 128 MiB.
const cgroupChildLimit = 256 * mib

// makeTestCgroup makes a cgroup with a memory limit of cgroupChildLimit below the process's own
// memory cgroup, v2 if the v2 hierarchy has the memory controller and else v1. It returns the
// directory, the file a process id is written to, the file of the cgroup's peak usage, and why
// it could not when it could not.
func makeTestCgroup(t *testing.T) (dir, procs, peak string, why error) {
	raw, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", "", "", fmt.Errorf("no /proc/self/cgroup: %v", err)
	}
	var reasons []string
	for _, v1 := range []bool{false, true} {
		var cgPath string
		for _, line := range strings.Split(string(raw), "\n") {
			// hierarchy-ID:controller-list:cgroup-path
			if f := strings.SplitN(line, ":", 3); len(f) == 3 &&
				((!v1 && f[0] == "0" && f[1] == "") || (v1 && hasField(f[1], "memory"))) {
				cgPath = f[2]
			}
		}
		name := map[bool]string{false: "cgroup v2", true: "cgroup v1 memory"}[v1]
		if cgPath == "" {
			reasons = append(reasons, name+": the process is in no such cgroup")
			continue
		}
		parent, _, ok := cgroupDir("/", cgPath, v1)
		if !ok {
			reasons = append(reasons, name+": no mount reaches "+cgPath)
			continue
		}
		limitFile, peakFile := "memory.max", "memory.peak"
		if v1 {
			limitFile, peakFile = "memory.limit_in_bytes", "memory.max_usage_in_bytes"
		}
		d := filepath.Join(parent, fmt.Sprintf("ferry-budget-test-%d", os.Getpid()))
		if err := os.Mkdir(d, 0o755); err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: cannot make a cgroup under %s: %v", name, parent, err))
			continue
		}
		if err := os.WriteFile(filepath.Join(d, limitFile), []byte(strconv.Itoa(cgroupChildLimit)), 0); err != nil {
			ctrl, _ := os.ReadFile(filepath.Join(parent, "cgroup.controllers"))
			reasons = append(reasons, fmt.Sprintf("%s: cannot set %s in %s (controllers: %q): %v",
				name, limitFile, d, strings.TrimSpace(string(ctrl)), err))
			os.Remove(d)
			continue
		}
		return d, filepath.Join(d, "cgroup.procs"), filepath.Join(d, peakFile), nil
	}
	return "", "", "", errors.New(strings.Join(reasons, "; "))
}

// TestBudgetCgroup runs a child process in a cgroup with a 256 MiB memory limit and neither
// GOMEMLIMIT nor FERRY_SOFT_LIMIT: its soft limit must come from the cgroup (64 MiB), and it must
// drop 1 GiB of filled 1 MiB Buffers without Close, without an error and without being killed for
// memory. (With the fixed default soft limit of 256 MiB, which FERRY_SOFT_LIMIT=256MiB restores,
// the kernel kills the child: ferry alone lets 256 MiB and more pile up before it collects.) It
// needs to make a cgroup (root, and a memory controller it may use), and skips otherwise.
func TestBudgetCgroup(t *testing.T) {
	if debugMode {
		t.Skip("guard mode never gives released pages back: a memory limit is no measure there")
	}
	dir, procs, peak, why := makeTestCgroup(t)
	if why != nil {
		t.Skipf("no cgroup with a memory limit can be made here: %v", why)
	}
	defer func() {
		if err := os.Remove(dir); err != nil {
			t.Errorf("remove the test cgroup: %v", err)
		}
	}()
	// A child killed for memory fails runBudgetChild with "signal: killed".
	f := runBudgetChild(t, "cgroup", 1<<30, []string{"FERRY_BUDGET_GATE=1"}, func(cmd *exec.Cmd, gate *os.File) error {
		if err := os.WriteFile(procs, []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
			return fmt.Errorf("move the child into %s: %v", dir, err)
		}
		if _, err := fmt.Fprintln(gate, "go"); err != nil {
			return fmt.Errorf("open the gate: %v", err)
		}
		return nil
	})
	usage := "?"
	if b, err := os.ReadFile(peak); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			usage = fmt.Sprintf("%.1f MiB", inMiB(v))
		}
	}
	t.Logf("cgroup %s (limit %d MiB): soft limit %.1f MiB from %s, budget %.0f MiB from %q, hard limit %.0f MiB; "+
		"1 GiB dropped in %s ms, peak live %.1f MiB, %s collections; the cgroup's peak usage %s",
		dir, cgroupChildLimit>>20, inMiB(f.int(t, "soft")), f["source"], inMiB(f.int(t, "budget")), f["budget_source"],
		inMiB(f.int(t, "hard")), f["ms"], inMiB(f.int(t, "peak_live")), f["collections"], usage)
	if f["source"] != string(SourceCgroup) || f.int(t, "soft") != cgroupChildLimit/4 ||
		f.int(t, "budget") != cgroupChildLimit || f["budget_source"] != string(SourceCgroup) {
		t.Errorf("soft limit %d from %s, budget %d from %q: want %d from the cgroup's %d",
			f.int(t, "soft"), f["source"], f.int(t, "budget"), f["budget_source"], cgroupChildLimit/4, cgroupChildLimit)
	}
}
