package rootfs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
)

// installSection is what `systemctl enable` reads from a unit's [Install].
type installSection struct {
	WantedBy, RequiredBy, Alias, Also []string
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
		case "Also":
			in.Also = append(in.Also, vals...)
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

// EnableBase returns the symlinks that `systemctl enable` makes for units
// the base ships in /usr/lib/systemd/system, following their Also=. An
// instance (name@instance.service) is enabled from its template, with %i
// in the [Install] section replaced by the instance.
func (b *Base) EnableBase(ctx context.Context, units []string) ([]File, error) {
	const dir = "usr/lib/systemd/system/"
	links := map[string]string{}
	done := map[string]bool{}
	for len(units) > 0 {
		var files []string
		var next []string
		for _, u := range units {
			if done[u] {
				continue
			}
			done[u] = true
			next = append(next, u)
			files = append(files, dir+template(u))
		}
		if len(next) == 0 {
			break
		}
		data, err := b.ReadFiles(ctx, files)
		if err != nil {
			return nil, fmt.Errorf("enable %s: %w (is its package in the lock?)", strings.Join(next, ", "), err)
		}
		units = nil
		for _, u := range next {
			raw := data[dir+template(u)]
			if i := instance(u); i != "" {
				raw = bytes.ReplaceAll(raw, []byte("%i"), []byte(i))
			}
			in, err := parseInstall(u, raw)
			if err != nil {
				return nil, err
			}
			if len(in.WantedBy)+len(in.RequiredBy)+len(in.Alias)+len(in.Also) == 0 {
				return nil, fmt.Errorf("unit /%s%s has no [Install] section: it cannot be enabled", dir, template(u))
			}
			target := "/" + dir + template(u)
			for _, t := range in.WantedBy {
				links["etc/systemd/system/"+t+".wants/"+u] = target
			}
			for _, t := range in.RequiredBy {
				links["etc/systemd/system/"+t+".requires/"+u] = target
			}
			for _, a := range in.Alias {
				links["etc/systemd/system/"+a] = target
			}
			units = append(units, in.Also...)
		}
	}
	out := make([]File, 0, len(links))
	for p, t := range links {
		out = append(out, File{Path: "/" + p, Link: t})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// template is the unit file an instance is made from: a@b.service → a@.service.
func template(unit string) string {
	at := strings.IndexByte(unit, '@')
	dot := strings.LastIndexByte(unit, '.')
	if at < 0 || dot < at {
		return unit
	}
	return unit[:at+1] + unit[dot:]
}

// instance is the part between @ and the suffix, "" for a plain unit.
func instance(unit string) string {
	at := strings.IndexByte(unit, '@')
	dot := strings.LastIndexByte(unit, '.')
	if at < 0 || dot < at {
		return ""
	}
	return unit[at+1 : dot]
}
