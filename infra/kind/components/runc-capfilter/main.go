// Command runc-capfilter is an OCI runtime shim that drops, from every
// container's capability sets, the capabilities this process cannot hold
// itself, then executes the real runc.
//
// Why: the sandbox this project runs in lacks CAP_SYS_RESOURCE in its
// bounding set, so `docker run --privileged` (and privileged pods inside a
// kind node) fail with "unable to apply caps". Filtering the spec keeps every
// other capability and lets the container start.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/sys/capability"
)

// realRuncCandidates are tried in order; RUNC_CAPFILTER_REAL overrides them.
var realRuncCandidates = []string{"/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc.real"}

func main() {
	args := os.Args[1:]
	if err := filterSpecs(args); err != nil {
		fmt.Fprintf(os.Stderr, "runc-capfilter: %v\n", err)
		os.Exit(1)
	}
	real, err := realRunc()
	if err != nil {
		fmt.Fprintf(os.Stderr, "runc-capfilter: %v\n", err)
		os.Exit(1)
	}
	if err := syscall.Exec(real, append([]string{real}, args...), os.Environ()); err != nil {
		fmt.Fprintf(os.Stderr, "runc-capfilter: exec %s: %v\n", real, err)
		os.Exit(1)
	}
}

func realRunc() (string, error) {
	if p := os.Getenv("RUNC_CAPFILTER_REAL"); p != "" {
		return p, nil
	}
	for _, p := range realRuncCandidates {
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("no runc found in %v", realRuncCandidates)
}

// globalFlagsWithValue are runc's global flags that consume the next argument.
var globalFlagsWithValue = map[string]bool{
	"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true,
}

// filterSpecs finds the OCI spec (create/run) or process spec (exec) that the
// command line points at and removes capabilities outside our bounding set.
func filterSpecs(args []string) error {
	sub, rest := subcommand(args)
	switch sub {
	case "create", "run":
		bundle := flagValue(rest, "--bundle", "-b")
		if bundle == "" {
			bundle = "."
		}
		return filterFile(filepath.Join(bundle, "config.json"), true)
	case "exec":
		if p := flagValue(rest, "--process", "-p"); p != "" {
			return filterFile(p, false)
		}
	}
	return nil
}

func subcommand(args []string) (string, []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			return a, args[i+1:]
		}
		if globalFlagsWithValue[a] {
			i++
		}
	}
	return "", nil
}

func flagValue(args []string, long, short string) string {
	for i, a := range args {
		if (a == long || a == short) && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, long+"="); ok {
			return v
		}
	}
	return ""
}

func filterFile(path string, fullSpec bool) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	process := doc
	if fullSpec {
		p, ok := doc["process"].(map[string]any)
		if !ok {
			return nil
		}
		process = p
	}
	caps, ok := process["capabilities"].(map[string]any)
	if !ok {
		return nil
	}
	allowed, err := boundingSet()
	if err != nil {
		return err
	}
	changed := false
	for set, v := range caps {
		list, ok := v.([]any)
		if !ok {
			continue
		}
		kept := make([]any, 0, len(list))
		for _, c := range list {
			name, _ := c.(string)
			if allowed[name] {
				kept = append(kept, c)
			} else {
				changed = true
			}
		}
		caps[set] = kept
	}
	if !changed {
		return nil
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o600)
}

// boundingSet returns the OCI names (CAP_*) of the capabilities in this
// process's bounding set, read from /proc/self/status.
func boundingSet() (map[string]bool, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	var mask uint64
	found := false
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			mask, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return nil, fmt.Errorf("parse CapBnd: %w", err)
			}
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("no CapBnd in /proc/self/status")
	}
	allowed := map[string]bool{}
	for _, c := range capability.ListKnown() {
		if mask&(1<<uint(c)) != 0 {
			allowed["CAP_"+strings.ToUpper(c.String())] = true
		}
	}
	return allowed, nil
}
