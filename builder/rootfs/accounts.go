package rootfs

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// accounts holds /etc/passwd, /etc/group, /etc/shadow and /etc/gshadow as
// lines of colon-separated fields, in file order.
type accounts struct {
	passwd, group, shadow, gshadow [][]string
}

func parseDB(data []byte) [][]string {
	var out [][]string
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}

func formatDB(db [][]string) []byte {
	var b strings.Builder
	for _, f := range db {
		b.WriteString(strings.Join(f, ":"))
		b.WriteString("\n")
	}
	return []byte(b.String())
}

func find(db [][]string, name string) int {
	for i, f := range db {
		if len(f) > 0 && f[0] == name {
			return i
		}
	}
	return -1
}

func ids(db [][]string, col int) map[int]bool {
	m := map[int]bool{}
	for _, f := range db {
		if len(f) > col {
			if n, err := strconv.Atoi(f[col]); err == nil {
				m[n] = true
			}
		}
	}
	return m
}

// User is a login account to add.
type User struct {
	Name    string
	UID     int // 0: pick the lowest free id ≥ 1000
	Groups  []string
	Shell   string
	SSHKeys []string
}

// addUser adds a user with a same-named primary group and returns the uid
// and gid. Passwords are "*": no password login, SSH keys only. lastChange
// is the shadow "days since 1970" field, derived from SOURCE_DATE_EPOCH.
func (a *accounts) addUser(u User, lastChange int64) (int, int, error) {
	if find(a.passwd, u.Name) >= 0 {
		return 0, 0, fmt.Errorf("user %s: already exists in the base system", u.Name)
	}
	usedU, usedG := ids(a.passwd, 2), ids(a.group, 2)
	uid := u.UID
	if uid == 0 {
		for uid = 1000; usedU[uid] || usedG[uid]; uid++ {
		}
	} else if usedU[uid] {
		return 0, 0, fmt.Errorf("user %s: uid %d is already taken (by the base system or an earlier user)", u.Name, uid)
	}
	gid := uid
	for usedG[gid] {
		gid++
	}
	if find(a.group, u.Name) >= 0 {
		return 0, 0, fmt.Errorf("user %s: a group of that name already exists in the base system", u.Name)
	}
	for _, g := range u.Groups {
		i := find(a.group, g)
		if i < 0 {
			return 0, 0, fmt.Errorf("user %s: group %q does not exist in the base system (available: %s)", u.Name, g, strings.Join(a.groupNames(), ", "))
		}
		a.group[i] = addMember(a.group[i], 3, u.Name)
		if j := find(a.gshadow, g); j >= 0 {
			a.gshadow[j] = addMember(a.gshadow[j], 3, u.Name)
		}
	}
	home := "/home/" + u.Name
	a.passwd = append(a.passwd, []string{u.Name, "x", strconv.Itoa(uid), strconv.Itoa(gid), "", home, u.Shell})
	a.shadow = append(a.shadow, []string{u.Name, "*", strconv.FormatInt(lastChange, 10), "0", "99999", "7", "", "", ""})
	a.group = append(a.group, []string{u.Name, "x", strconv.Itoa(gid), ""})
	a.gshadow = append(a.gshadow, []string{u.Name, "!", "", ""})
	return uid, gid, nil
}

func addMember(f []string, col int, name string) []string {
	for len(f) <= col {
		f = append(f, "")
	}
	var members []string
	if f[col] != "" {
		members = strings.Split(f[col], ",")
	}
	for _, m := range members {
		if m == name {
			return f
		}
	}
	f[col] = strings.Join(append(members, name), ",")
	return f
}

func (a *accounts) groupNames() []string {
	var n []string
	for _, f := range a.group {
		n = append(n, f[0])
	}
	sort.Strings(n)
	return n
}

// lookup resolves "user:group" (names or numbers) to ids.
func (a *accounts) lookup(owner string) (int, int, error) {
	un, gn, ok := strings.Cut(owner, ":")
	if !ok {
		return 0, 0, fmt.Errorf("owner %q: want user:group", owner)
	}
	uid, err := resolveID(a.passwd, un, 2)
	if err != nil {
		return 0, 0, fmt.Errorf("owner %q: user %w", owner, err)
	}
	gid, err := resolveID(a.group, gn, 2)
	if err != nil {
		return 0, 0, fmt.Errorf("owner %q: group %w", owner, err)
	}
	return uid, gid, nil
}

func resolveID(db [][]string, name string, col int) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	i := find(db, name)
	if i < 0 || len(db[i]) <= col {
		return 0, fmt.Errorf("%q does not exist in the image", name)
	}
	return strconv.Atoi(db[i][col])
}

func cloneDB(db [][]string) [][]string {
	out := make([][]string, len(db))
	for i, f := range db {
		out[i] = append([]string(nil), f...)
	}
	return out
}
