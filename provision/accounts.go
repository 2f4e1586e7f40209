package provision

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// accounts are the target's users and groups.
type accounts struct {
	users  map[string][2]int // name → uid, gid
	logins []string
	groups map[string]int
}

func readAccounts(passwd, group string) (accounts, error) {
	a := accounts{users: map[string][2]int{}, groups: map[string]int{}}
	p, err := os.ReadFile(passwd)
	if err != nil {
		return a, fmt.Errorf("read the image's accounts: %w", err)
	}
	g, err := os.ReadFile(group)
	if err != nil {
		return a, fmt.Errorf("read the image's accounts: %w", err)
	}
	for _, l := range strings.Split(string(p), "\n") {
		f := strings.Split(l, ":")
		if len(f) < 7 {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		a.users[f[0]] = [2]int{uid, gid}
		if uid == 0 || (uid >= 1000 && uid < 60000) {
			a.logins = append(a.logins, f[0])
		}
	}
	for _, l := range strings.Split(string(g), "\n") {
		f := strings.Split(l, ":")
		if len(f) < 3 {
			continue
		}
		if gid, err := strconv.Atoi(f[2]); err == nil {
			a.groups[f[0]] = gid
		}
	}
	return a, nil
}

// loginNames lists the image's login users for a message (root and the
// uids of people), or says there is none.
func (a accounts) loginNames() []string {
	if len(a.logins) == 0 {
		return []string{"no login users"}
	}
	return a.logins
}

// owner is the uid and gid of user:group o, or what is wrong with it.
func (a accounts) owner(o string) (int, int, msg) {
	un, gn, _ := strings.Cut(o, ":")
	u, ok := a.users[un]
	if !ok {
		return 0, 0, fromImage("the user does not exist in this image (it has ", a.loginNames(), ")")
	}
	g, ok := a.groups[gn]
	if !ok {
		return 0, 0, "the group does not exist in this image"
	}
	return u[0], g, ""
}
