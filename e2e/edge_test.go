package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pibake/pibake/builder"
	"github.com/pibake/pibake/container"
	"github.com/pibake/pibake/internal/registrytest"
	"github.com/pibake/pibake/internal/standintest"
)

// edgeUnits are the edge stack's five containers, in start order.
var edgeUnits = []string{"redis", "mosquitto", "backend", "dashboard", "proxy"}

// edgeSecrets are what first-boot provisioning gives the edge stack: made
// for the run, so finding one anywhere is a leak, not a coincidence.
type edgeSecrets struct{ redis, mqttUser, mqttPassword, token string }

func newEdgeSecrets() edgeSecrets {
	r := func(what string) string {
		var b [12]byte
		rand.Read(b[:])
		return "E2E-" + what + "-" + hex.EncodeToString(b[:])
	}
	return edgeSecrets{redis: r("redis"), mqttUser: "backend", mqttPassword: r("mqtt"), token: r("token")}
}

func (s edgeSecrets) all() []string { return []string{s.redis, s.mqttPassword, s.token} }

// TestEdge builds images/essensys-edge.yaml for the qemu board against a
// real registry (TLS, a password) holding the stand-in images of Redis,
// Mosquitto and the proxy (Debian's programs, internal/standintest), with
// the backend and the dashboard built from examples/, and boots it with
// its secrets on the card for first-boot provisioning. All five
// containers must come up healthy; a message published to Mosquitto from
// the host is stored by the backend in Redis and read back through the
// proxy on port 80; Redis answers nothing from outside and Mosquitto no
// anonymous client; the secrets land under /data/edge with tight modes
// and are nowhere in the built image, its lock, the card's bootsel or the
// journal. Then, in the same run (edgeStory), the box is updated as one
// release: v2, where a developer changed only the backend, comes as a
// delta and keeps Redis's data and Mosquitto's retained message; v3's
// backend fails its health check, and the box rolls back to v2 with what
// was written during the trial.
func TestEdge(t *testing.T) {
	story(t, laneEdge)
	started := time.Now()
	img, built, def, rootfs := buildEdge(t)
	builds := map[string]string{
		edgeV1: filepath.Dir(built),
		edgeV2: buildEdgeRelease(t, def, edgeV2, edgeBackendV2Code),
		edgeV3: buildEdgeRelease(t, def, edgeV3, edgeBackendV3Code),
	}
	buildsAt := time.Since(started)
	sec := newEdgeSecrets()
	key, pub := sshKey(t)
	putBootsel(t, img, map[string]string{
		"pibake-provision.yaml": edgeProvisionFile(t, pub, sec),
		edgeUpdateMarker:        "the e2e report reports once and the box stays up for its updates\n",
	})
	waitForSSH(t, img)
	er := edgeStory(t, img, def, key, builds, sec)
	r := er.report
	if er.steps < 2 {
		t.Fatalf("edge: the first boot never reported (console in %s): %v", er.run.log, er.errs)
	}
	expect(t, r, "state", "running")
	expect(t, r, "failed", "")
	for _, e := range er.checks.errs {
		t.Error(e)
	}
	t.Logf("edge: services %s", er.checks.units)
	t.Logf("edge: listening %s", er.checks.listen)
	t.Logf("edge: secrets %s", er.checks.modes)
	t.Logf("edge: root filesystem %d bytes; builds of v1-v3 %s; QEMU start to all five healthy (the report's wait): %s; five healthy at %s ms after the kernel started; %s; QEMU start to report %s",
		rootfs, buildsAt.Round(time.Second), er.at[0].Round(100*time.Millisecond), er.checks.healthyMS, r.fields["analyze"], er.at[1].Round(100*time.Millisecond))
	er.logUpdates(t)
	for _, e := range er.errs {
		t.Error(e)
	}
	// The secrets: nowhere in what was built, nor left on bootsel.
	for _, f := range []string{built, builder.LockPath(def)} {
		for _, s := range sec.all() {
			if n := countIn(t, f, s); n > 0 {
				t.Errorf("%s holds a secret %d times", f, n)
			}
		}
	}
	noSecrets(t, img, sec.all()...)
	t.Logf("edge: story %s", time.Since(started).Round(time.Second))
}

// buildEdge starts the registry, pushes the stand-ins, locks the edge
// definition against it (its Debian packages are the demo's lock's, so
// the base the other stories bootstrapped serves) and builds it for
// qemu with the e2e report. It returns a copy of the image to boot, the
// built image, the definition and the root filesystem's size.
func buildEdge(t *testing.T) (img, built, def string, rootfs int64) {
	t.Helper()
	reg := registrytest.Start(t)
	standintest.Push(t, reg, reg.Host)
	// A parallel test cannot t.Setenv: no other story reads these.
	setenv(t, container.EnvCA, reg.CAFile)
	setenv(t, container.EnvAuthFile, reg.AuthFile(t, filepath.Join(t.TempDir(), "ci.json"), ""))
	def = standintest.EdgeProject(t, reg.Host, "../images/demo.lock", func(top *yaml.Node) error {
		addEdgeUpdater(t, top)
		for _, kv := range [][2]string{{"overlays", "e2e"}, {"services", "e2e-report"}, {"overlays", "e2e-edge"}, {"services", "e2e-edge-status"}} {
			list := mapValue(top, kv[0])
			if list == nil {
				list = &yaml.Node{Kind: yaml.SequenceNode}
				top.Content = append(top.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: kv[0]}, list)
			}
			list.Content = append(list.Content, &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "name"}, {Kind: yaml.ScalarNode, Value: kv[1]}}})
		}
		return nil
	})
	repo := filepath.Dir(filepath.Dir(def))
	for _, c := range [][2]string{{"testdata/overlays/e2e", "overlays/e2e"}, {"testdata/services/e2e-report.service", "services/e2e-report.service"}} {
		if err := copyTree(c[0], filepath.Join(repo, c[1])); err != nil {
			t.Fatal(err)
		}
	}
	writeEdgeUpdateFiles(t, repo)
	ctx := context.Background()
	start := time.Now()
	if _, _, err := builder.Lock(ctx, builder.LockOptions{Definition: def, ContainersOnly: true}); err != nil {
		t.Fatal(err)
	}
	res, err := builder.Build(ctx, builder.Options{Definition: def, Board: "qemu", OutDir: filepath.Join(repo, "out", "essensys-edge")})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("edge: locked against %s and built in %s: %s", reg.Host, time.Since(start).Round(time.Second), res.Image)
	for _, c := range res.Manifest.Containers {
		t.Logf("edge: container %+v", c)
	}
	return copyImage(t, res.Image, 0), res.Image, def, res.Manifest.Rootfs.Size
}

func setenv(t *testing.T, k, v string) {
	old, had := os.LookupEnv(k)
	os.Setenv(k, v)
	t.Cleanup(func() {
		if had {
			os.Setenv(k, old)
		} else {
			os.Unsetenv(k)
		}
	})
}

// edgeProvisionFile is the card's pibake-provision.yaml: the login key,
// and the stack's secrets under /data/edge, each readable only by the
// container that needs it (the backend runs as 65534, Redis and
// Mosquitto as root in theirs). Mosquitto's file holds the password's
// hash, as mosquitto_passwd writes it.
func edgeProvisionFile(t *testing.T, pub string, s edgeSecrets) string {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "passwd")
	if out, err := exec.Command("mosquitto_passwd", "-b", "-c", pw, s.mqttUser, s.mqttPassword).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	hashed, err := os.ReadFile(pw)
	if err != nil {
		t.Fatal(err)
	}
	file := func(path, owner, content string) string {
		return fmt.Sprintf("  - path: %s\n    mode: \"0400\"\n    owner: %s\n    content: %q\n", path, owner, content)
	}
	return "hostname: edge-box\nusers:\n  - name: pi\n    ssh_keys: [\"" + pub + "\"]\nfiles:\n" +
		file("edge/secrets/redis-password", "nobody:nogroup", s.redis+"\n") +
		file("edge/secrets/mqtt-user", "nobody:nogroup", s.mqttUser+"\n") +
		file("edge/secrets/mqtt-password", "nobody:nogroup", s.mqttPassword+"\n") +
		file("edge/secrets/api-token", "nobody:nogroup", s.token+"\n") +
		file("edge/redis/auth.conf", "root:root", "requirepass "+s.redis+"\n") +
		file("edge/mosquitto/passwd", "root:root", string(hashed))
}

// edgeChecks is what checkEdge found while the guest waited.
type edgeChecks struct {
	errs                            []string
	units, listen, modes, healthyMS string
	// payload went through MQTT into Redis; retained is Mosquitto's
	// retained message on edgeRetainedTopic: both must outlive updates.
	payload, retained string
}

// checkEdge runs the host's side of the story while the guest waits for
// the SSH login: MQTT in, HTTP out through the proxy, the closed doors,
// then a login that reads the services' state and the journal and lets
// the report go on.
func checkEdge(ports map[int]int, key string, s edgeSecrets) (c edgeChecks) {
	fail := func(f string, a ...any) { c.errs = append(c.errs, fmt.Sprintf(f, a...)) }
	payload := "e2e-reading-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	mqtt := strconv.Itoa(ports[1883])
	pubArgs := []string{"-h", "127.0.0.1", "-p", mqtt, "-t", "edge/e2e/sensor", "-q", "1", "-m", payload}
	if out, err := exec.Command("mosquitto_pub", append(pubArgs, "-u", s.mqttUser, "-P", s.mqttPassword)...).CombinedOutput(); err != nil {
		fail("publish with the provisioned login: %v: %s", err, out)
	}
	c.payload, c.retained = payload, "retained-"+payload
	retArgs := []string{"-h", "127.0.0.1", "-p", mqtt, "-t", edgeRetainedTopic, "-q", "1", "-r", "-m", c.retained, "-u", s.mqttUser, "-P", s.mqttPassword}
	if out, err := exec.Command("mosquitto_pub", retArgs...).CombinedOutput(); err != nil {
		fail("publish a retained message: %v: %s", err, out)
	}
	if out, err := exec.Command("mosquitto_pub", append(pubArgs, "-m", "anonymous")...).CombinedOutput(); err == nil {
		fail("Mosquitto took an anonymous client on port 1883: %s", out)
	}
	if got := redisFromOutside(ports[6379]); got != "" {
		fail("Redis answered from outside the box: %q", got)
	}
	web := "http://127.0.0.1:" + strconv.Itoa(ports[80])
	body, code := httpGet(web+"/api/messages", "")
	if code != http.StatusUnauthorized {
		fail("GET /api/messages without the token through the proxy: %d %s", code, body)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		body, code = httpGet(web+"/api/messages", s.token)
		if code == http.StatusOK && strings.Contains(body, payload) || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if code != http.StatusOK || !strings.Contains(body, payload) || !strings.Contains(body, "edge/e2e/sensor") {
		fail("the published message through the proxy: %d %s", code, body)
	}
	if page, code := httpGet(web+"/", ""); code != http.StatusOK || !strings.Contains(strings.ToLower(page), "<html") {
		fail("the dashboard through the proxy: %d %.200s", code, page)
	}
	var cmd strings.Builder
	cmd.WriteString("systemctl is-active " + strings.Join(edgeUnits, " ") + " | tr '\\n' ' '; echo;")
	cmd.WriteString("for u in " + strings.Join(edgeUnits, " ") + "; do echo $(( $(systemctl show -p ActiveEnterTimestampMonotonic --value $u.service) / 1000 )); done | sort -n | tail -n 1;")
	cmd.WriteString("ss -Hltn | awk '{print $4}' | sort -u | tr '\\n' ' '; echo;")
	cmd.WriteString("stat -c '%n %a %U' /data/edge /data/edge/secrets /data/edge/secrets/* /data/edge/redis/* /data/edge/mosquitto/* | tr '\\n' ';'; echo;")
	cmd.WriteString("echo JOURNAL; journalctl -b --no-pager -o cat")
	out := sshRun(key, ports[22], cmd.String()+"; touch /tmp/e2e-ssh-done")
	head, journal, ok := strings.Cut(out, "JOURNAL\n")
	lines := strings.Split(head, "\n")
	if !ok || len(lines) < 4 {
		fail("the login's answer: %.2000s", out)
		return c
	}
	c.units, c.healthyMS, c.listen, c.modes = lines[0], lines[1], lines[2], lines[3]
	if strings.TrimSpace(c.units) != strings.TrimSpace(strings.Repeat("active ", len(edgeUnits))) {
		fail("services %v: %s", edgeUnits, c.units)
	}
	for _, l := range strings.Fields(c.listen) {
		if strings.HasSuffix(l, ":6379") && l != "127.0.0.1:6379" {
			fail("Redis listens on %s (only 127.0.0.1:6379 is meant)", l)
		}
		if strings.HasSuffix(l, ":1884") {
			fail("something listens on %s (Mosquitto's old anonymous health port; it has one listener now)", l)
		}
	}
	for _, f := range strings.Split(strings.TrimSuffix(c.modes, ";"), ";") {
		if f := strings.Fields(f); len(f) == 3 && strings.Contains(f[0], "/data/edge/") && f[0] != "/data/edge/secrets" && f[1] != "400" {
			fail("%s has mode %s, want 400", f[0], f[1])
		}
	}
	for _, sec := range s.all() {
		if strings.Contains(journal, sec) {
			fail("the journal holds a secret")
		}
	}
	if len(journal) < 1000 {
		fail("the journal read over SSH is %d bytes: not read", len(journal))
	}
	return c
}

// redisFromOutside connects to the box's Redis port and asks PING: what
// comes back (nothing when nothing listens there).
func redisFromOutside(port int) string {
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 5*time.Second)
	if err != nil {
		return ""
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write([]byte("PING\r\n"))
	b, _ := io.ReadAll(io.LimitReader(conn, 256))
	return string(b)
}

func httpGet(url, token string) (string, int) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err.Error(), 0
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return err.Error(), 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return string(b), resp.StatusCode
}

// sshRun runs cmd as pi on the guest, a few tries while sshd starts.
func sshRun(key string, port int, cmd string) string {
	args := []string{"-i", key, "-p", strconv.Itoa(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR", "pi@127.0.0.1", cmd}
	var out []byte
	var err error
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, err = exec.CommandContext(ctx, "ssh", args...).Output()
		cancel()
		if err == nil {
			break
		}
		time.Sleep(5 * time.Second)
	}
	if err != nil {
		return "ssh failed: " + err.Error() + ": " + string(out)
	}
	return string(out)
}

// countIn counts s in the file, read in pieces that overlap by len(s).
func countIn(t *testing.T, path, s string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 8<<20)
	keep, n := 0, 0
	for {
		m, err := f.Read(buf[keep:])
		chunk := buf[:keep+m]
		n += bytes.Count(chunk, []byte(s))
		if err != nil {
			return n
		}
		keep = min(len(s)-1, len(chunk))
		copy(buf, chunk[len(chunk)-keep:])
	}
}
