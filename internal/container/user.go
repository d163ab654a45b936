package container

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// resolveUser turns a container's user, as Docker takes it (name, uid, name:group, uid:gid),
// into credentials, reading /etc/passwd and /etc/group of the calling thread's root (the
// container's, once chrooted). A numeric uid need not exist in passwd, as in Docker; a name
// must. It also returns the user's home directory, for HOME ("/" when unknown). "" is root.
func resolveUser(user string) (*syscall.Credential, string, error) {
	if user == "" {
		return nil, "/root", nil
	}
	name, group, _ := strings.Cut(user, ":")
	cred := &syscall.Credential{}
	home := "/"
	if id, err := strconv.ParseUint(name, 10, 32); err == nil {
		cred.Uid = uint32(id)
		if e, ok := findEntry("/etc/passwd", func(f []string) bool { return f[2] == name }); ok {
			cred.Gid, home = parseID(e[3]), e[5]
		}
	} else {
		e, ok := findEntry("/etc/passwd", func(f []string) bool { return f[0] == name })
		if !ok || len(e) < 6 {
			return nil, "", fmt.Errorf("unable to find user %s: no matching entries in passwd file", name)
		}
		cred.Uid, cred.Gid, home = parseID(e[2]), parseID(e[3]), e[5]
	}
	if group != "" {
		if id, err := strconv.ParseUint(group, 10, 32); err == nil {
			cred.Gid = uint32(id)
		} else {
			e, ok := findEntry("/etc/group", func(f []string) bool { return f[0] == group })
			if !ok {
				return nil, "", fmt.Errorf("unable to find group %s: no matching entries in group file", group)
			}
			cred.Gid = parseID(e[2])
		}
	}
	// Supplementary groups: none but the primary one, so that root's are not inherited.
	cred.Groups = []uint32{cred.Gid}
	return cred, home, nil
}

func parseID(s string) uint32 {
	id, _ := strconv.ParseUint(s, 10, 32)
	return uint32(id)
}

// findEntry returns the first line of a colon-separated file whose fields match.
func findEntry(path string, match func([]string) bool) ([]string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 3 && match(fields) {
			for len(fields) < 7 {
				fields = append(fields, "")
			}
			return fields, true
		}
	}
	return nil, false
}
