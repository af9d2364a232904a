package ferry

import (
	"os"
	"path"
	"strconv"
	"strings"
)

// cgroupUnlimited: a cgroup v1 memory.limit_in_bytes at or above this means no limit (the kernel
// shows "none" as the largest page-aligned int64, 9223372036854771712).
const cgroupUnlimited = 1 << 60

// cgroupMemoryLimit returns the memory limit of the cgroup the process runs in, 0 for none or when
// it cannot be read (not Linux, no cgroup filesystem mounted, a cgroup outside the mounted part).
func cgroupMemoryLimit() int64 { return cgroupMemoryLimitAt("/") }

// cgroupMemoryLimitAt is cgroupMemoryLimit with every absolute path read under root (for tests).
//
// The process's memory cgroup is its cgroup v1 hierarchy with the memory controller, if it has
// one, or else its cgroup v2 one ("0::/path" in /proc/self/cgroup). The directory is found through
// /proc/self/mountinfo: the mount of that hierarchy whose root holds the cgroup, so cgroup
// namespaces and bind-mounted container cgroups both work. The limit is the lowest memory.max
// (v2; "max" is none) or memory.limit_in_bytes (v1) from that directory up to the mount point,
// because a parent's limit binds its children too.
func cgroupMemoryLimitAt(root string) int64 {
	raw, err := os.ReadFile(path.Join(root, "/proc/self/cgroup"))
	if err != nil {
		return 0
	}
	v1Path, v2Path, haveV1, haveV2 := "", "", false, false
	for _, line := range strings.Split(string(raw), "\n") {
		id, rest, ok1 := strings.Cut(line, ":")
		ctrls, p, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || !strings.HasPrefix(p, "/") {
			continue
		}
		if id == "0" && ctrls == "" {
			v2Path, haveV2 = p, true
		} else if hasField(ctrls, "memory") {
			v1Path, haveV1 = p, true
		}
	}
	var cgPath, file string
	var v1 bool
	switch {
	case haveV1:
		cgPath, file, v1 = v1Path, "memory.limit_in_bytes", true
	case haveV2:
		cgPath, file = v2Path, "memory.max"
	default:
		return 0
	}
	dir, mount, ok := cgroupDir(root, cgPath, v1)
	if !ok {
		return 0
	}
	best := int64(0)
	for d := dir; ; d = path.Dir(d) {
		if b, err := os.ReadFile(path.Join(root, d, file)); err == nil {
			if v := parseCgroupLimit(string(b)); v > 0 && (best == 0 || v < best) {
				best = v
			}
		}
		if d == mount || d == "/" || d == "." {
			break
		}
	}
	return best
}

// parseCgroupLimit parses memory.max or memory.limit_in_bytes: a byte count, or 0 for "max",
// an unlimited v1 value or anything malformed.
func parseCgroupLimit(s string) int64 {
	s = strings.TrimSpace(s)
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || v >= cgroupUnlimited {
		return 0
	}
	return v
}

// cgroupDir returns the directory of cgroup cgPath and the mount point it is under, from root's
// /proc/self/mountinfo: a cgroup2 mount for v2, or a cgroup mount with the memory super option
// for v1, whose root is cgPath or one of its ancestors.
func cgroupDir(root, cgPath string, v1 bool) (dir, mount string, ok bool) {
	raw, err := os.ReadFile(path.Join(root, "/proc/self/mountinfo"))
	if err != nil {
		return "", "", false
	}
	for _, line := range strings.Split(string(raw), "\n") {
		// 41 31 0:38 /root /mount/point rw,relatime [optional fields] - cgroup2 cgroup2 rw
		pre, post, found := strings.Cut(line, " - ")
		if !found {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 1 {
			continue
		}
		if v1 {
			if g[0] != "cgroup" || len(g) < 3 || !hasField(g[2], "memory") {
				continue
			}
		} else if g[0] != "cgroup2" {
			continue
		}
		mroot, mpoint := unescapeMount(f[3]), unescapeMount(f[4])
		var rel string
		switch {
		case mroot == "/":
			rel = cgPath
		case cgPath == mroot:
			rel = "/"
		case strings.HasPrefix(cgPath, mroot+"/"):
			rel = strings.TrimPrefix(cgPath, mroot)
		default:
			continue // this mount does not reach the cgroup (another namespace's part of the tree)
		}
		return path.Join(mpoint, rel), path.Clean(mpoint), true
	}
	return "", "", false
}

// hasField reports whether the comma-separated list holds name.
func hasField(list, name string) bool {
	for _, f := range strings.Split(list, ",") {
		if f == name {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, \011, \012, \134).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
