package unitcheck

import (
	"path"
	"slices"
	"strings"
)

// Settings is one section of a unit file: each key's values in order (a
// key may repeat, as DeviceAllow= and ReadWritePaths= do).
type Settings map[string][]string

// Section parses the section named name ("Unit", "Service") of a unit
// file. Comments and other sections are skipped; an empty assignment
// (CapabilityBoundingSet=) is kept as an empty value, as systemd resets
// the list there.
func Section(unit []byte, name string) Settings {
	s := Settings{}
	in := false
	for _, l := range strings.Split(string(unit), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "["):
			in = l == "["+name+"]"
		case in:
			k, v, ok := strings.Cut(l, "=")
			if ok {
				s[strings.TrimSpace(k)] = append(s[strings.TrimSpace(k)], strings.TrimSpace(v))
			}
		}
	}
	return s
}

// Last is key's last value, "" if it is not set.
func (s Settings) Last(key string) string {
	if v := s[key]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

// Words are the space-separated words of key's values since its last
// empty assignment.
func (s Settings) Words(key string) []string {
	var out []string
	for _, v := range s[key] {
		if v == "" {
			out = nil
			continue
		}
		out = append(out, strings.Fields(v)...)
	}
	return out
}

// Has reports whether word is among key's words.
func (s Settings) Has(key, word string) bool {
	return slices.Contains(s.Words(key), word)
}

// Allows reports whether a list setting (CapabilityBoundingSet=,
// RestrictAddressFamilies=) leaves word allowed: unset, it allows
// everything; each value is an allow list, or a deny list after "~";
// the first value decides which the list starts as.
func (s Settings) Allows(key, word string) bool {
	return s.allows(key, func(w string) bool { return w == word })
}

func (s Settings) allows(key string, match func(string) bool) bool {
	vals := s[key]
	if len(vals) == 0 {
		return true
	}
	allowed := strings.HasPrefix(vals[0], "~")
	for _, v := range vals {
		deny := strings.HasPrefix(v, "~")
		if v == "" || v == "none" {
			allowed = false
			continue
		}
		for _, w := range strings.Fields(strings.TrimPrefix(v, "~")) {
			if match(w) {
				allowed = !deny
			}
		}
	}
	return allowed
}

// AllowsCall reports whether the unit's SystemCallFilter= lets call
// through, with groups (@mount) expanded as groups describes them
// (SyscallGroups).
func (s Settings) AllowsCall(call string, groups map[string][]string) bool {
	return s.allows("SystemCallFilter", func(w string) bool {
		return w == call || slices.Contains(groups[w], call)
	})
}

// DeviceRestricted reports whether the unit's device access is a list
// (DevicePolicy=closed or strict, or any DeviceAllow=).
func (s Settings) DeviceRestricted() bool {
	return len(s.Words("DeviceAllow")) > 0 || s.Last("DevicePolicy") == "closed" || s.Last("DevicePolicy") == "strict"
}

// Writable reports whether the unit's main program may write path (an
// absolute path) under its ProtectSystem= and ProtectHome=: /dev, /proc
// and /sys are left to their own settings; below a ReadWritePaths=
// entry, /run/RuntimeDirectory=, or /tmp and /var/tmp with PrivateTmp=
// it is writable.
func (s Settings) Writable(p string) bool {
	p = path.Clean(p)
	under := func(dir string) bool { return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/") }
	var rw []string
	for _, w := range s.Words("ReadWritePaths") {
		rw = append(rw, strings.TrimLeft(w, "-+"))
	}
	for _, d := range s.Words("RuntimeDirectory") {
		rw = append(rw, "/run/"+d)
	}
	if yes(s.Last("PrivateTmp")) {
		rw = append(rw, "/tmp", "/var/tmp")
	}
	for _, d := range rw {
		if under(d) {
			return true
		}
	}
	switch s.Last("ProtectHome") {
	case "yes", "true", "read-only", "tmpfs":
		for _, d := range []string{"/home", "/root", "/run/user"} {
			if under(d) {
				return false
			}
		}
	}
	ro := map[string][]string{
		"strict": {"/"},
		"full":   {"/usr", "/boot", "/efi", "/etc"},
	}
	ro["yes"], ro["true"] = ro["full"][:3], ro["full"][:3]
	for _, d := range ro[s.Last("ProtectSystem")] {
		if under(d) && !under("/dev") && !under("/proc") && !under("/sys") {
			return false
		}
	}
	return true
}

func yes(v string) bool {
	switch v {
	case "yes", "true", "on", "1":
		return true
	}
	return false
}

// Programs are the programs a unit's Exec*= lines start, without their
// prefixes (-, +, !, @, :).
func Programs(unit []byte) []string {
	var out []string
	s := Section(unit, "Service")
	for _, k := range []string{"ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop", "ExecStopPost", "ExecCondition"} {
		for _, v := range s[k] {
			if f := strings.Fields(v); len(f) > 0 {
				out = append(out, strings.TrimLeft(f[0], "-+!@:"))
			}
		}
	}
	return out
}

// Required are the units a unit's [Unit] section pulls in (Requires=,
// Wants=, BindsTo=, Requisite=).
func Required(unit []byte) []string {
	var out []string
	s := Section(unit, "Unit")
	for _, k := range []string{"Requires", "Wants", "BindsTo", "Requisite"} {
		out = append(out, s.Words(k)...)
	}
	return out
}
