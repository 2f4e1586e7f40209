package rootfs

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// installSection is what `systemctl enable` reads from a unit's [Install].
type installSection struct {
	WantedBy, RequiredBy, Alias []string
}

func parseInstall(unit string, data []byte) (installSection, error) {
	var in installSection
	sc := bufio.NewScanner(bytes.NewReader(data))
	section := ""
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			section = t[1 : len(t)-1]
			continue
		}
		if section != "Install" {
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			return in, fmt.Errorf("%s:%d: %q is not key=value", unit, line, t)
		}
		vals := strings.Fields(v)
		switch strings.TrimSpace(k) {
		case "WantedBy":
			in.WantedBy = append(in.WantedBy, vals...)
		case "RequiredBy":
			in.RequiredBy = append(in.RequiredBy, vals...)
		case "Alias":
			in.Alias = append(in.Alias, vals...)
		}
	}
	return in, sc.Err()
}

// enableLinks returns the symlinks (path relative to the root → target)
// that enabling the unit creates under /etc/systemd/system.
func enableLinks(unit string, data []byte) (map[string]string, error) {
	if strings.Contains(unit, "@.") {
		return nil, fmt.Errorf("unit %s is a template: enable an instance (name@instance.service) instead", unit)
	}
	in, err := parseInstall(unit, data)
	if err != nil {
		return nil, err
	}
	if len(in.WantedBy)+len(in.RequiredBy)+len(in.Alias) == 0 {
		return nil, fmt.Errorf("unit %s has no [Install] section (WantedBy=...): it cannot be enabled; set enable: false or add one", unit)
	}
	target := "/etc/systemd/system/" + unit
	links := map[string]string{}
	for _, t := range in.WantedBy {
		links["etc/systemd/system/"+t+".wants/"+unit] = target
	}
	for _, t := range in.RequiredBy {
		links["etc/systemd/system/"+t+".requires/"+unit] = target
	}
	for _, a := range in.Alias {
		links["etc/systemd/system/"+a] = target
	}
	return links, nil
}
