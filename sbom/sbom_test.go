package sbom_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pibake/pibake/sbom"
	"github.com/pibake/pibake/sbom/sbomcheck"
)

const (
	sumA = "b88c0e42571dffc940e6e7f47508032df6ce148e84697cc86d6439e5ee65b35c"
	sumB = "9afcc3e049a66d7f703d092f845c800b767fb9afe9e681e1483eec163aadcb18"
	sumC = "de8c4e786967c52f4ebf825341ffe704f59678bb83449be11ac04bfb60067730"
)

func input() sbom.Input {
	return sbom.Input{
		Image: sbom.Image{Name: "demo", Version: "0.1.0", Board: "pi4", File: "demo.img", SHA256: sumC},
		Epoch: 1795392000, Suite: "trixie",
		Debs: []sbom.Deb{
			{Name: "libstdc++6", Version: "14.2.0-19", Arch: "arm64", SHA256: sumA},
			{Name: "bsdutils", Version: "1:2.41.5-0+deb13u1", Arch: "arm64", SHA256: sumB},
			{Name: "adduser", Version: "3.152", Arch: "all", SHA256: sumA},
			{Name: "u-boot-qemu", Version: "2025.01-3", Arch: "all", SHA256: sumB, Unused: true},
		},
		Containers: []sbom.Container{
			{Name: "hello", Source: "go:examples/hello", Digest: "sha256:" + sumC},
			{Name: "redis", Source: "docker.io/library/redis:7.4", Digest: "sha256:" + sumA},
			{Name: "web", Source: "oci:images/web:1.2", Digest: "sha256:" + sumB},
		},
	}
}

// TestValidSPDX reads the document back with SPDX's own Go tools and finds
// every package, container and relationship of the input.
func TestValidSPDX(t *testing.T) {
	in := input()
	data, err := sbom.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := sbomcheck.Check(data, in.Image, in.Debs, in.Containers); err != nil {
		t.Errorf("%v\n%s", err, data)
	}
	for _, want := range []string{
		`"created": "2026-11-23T00:00:00Z"`,
		`"referenceLocator": "pkg:deb/debian/bsdutils@1:2.41.5-0%2Bdeb13u1?arch=arm64"`,
		`"referenceLocator": "pkg:deb/debian/libstdc%2B%2B6@14.2.0-19?arch=arm64"`,
		`"referenceLocator": "pkg:oci/redis@sha256%3A` + sumA + `?arch=arm64&repository_url=docker.io/library/redis&tag=7.4"`,
		`"referenceLocator": "pkg:oci/hello@sha256%3A` + sumC + `?arch=arm64"`,
		`"referenceLocator": "pkg:oci/web@sha256%3A` + sumB + `?arch=arm64&tag=1.2"`,
		`"primaryPackagePurpose": "CONTAINER"`,
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("document lacks %s", want)
		}
	}
}

// TestCheckFindsMissingPackage: the check is not vacuous, a document
// without one of the lock's packages fails it.
func TestCheckFindsMissingPackage(t *testing.T) {
	in := input()
	data, err := sbom.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var kept []any
	for _, p := range doc["packages"].([]any) {
		if p.(map[string]any)["name"] != "bsdutils" {
			kept = append(kept, p)
		}
	}
	doc["packages"] = kept
	var rels []any
	for _, r := range doc["relationships"].([]any) {
		if !strings.Contains(r.(map[string]any)["relatedSpdxElement"].(string), "bsdutils") {
			rels = append(rels, r)
		}
	}
	doc["relationships"] = rels
	cut, _ := json.Marshal(doc)
	err = sbomcheck.Check(cut, in.Image, in.Debs, in.Containers)
	if err == nil || !strings.Contains(err.Error(), "bsdutils 1:2.41.5-0+deb13u1 (arm64) is missing") {
		t.Errorf("check of a document without bsdutils: %v", err)
	}
	// And a changed checksum, a lost CONTAINS.
	in2 := input()
	in2.Debs[2].SHA256 = sumB
	if err := sbomcheck.Check(data, in2.Image, in2.Debs, in2.Containers); err == nil || !strings.Contains(err.Error(), "adduser: sha256") {
		t.Errorf("check against another sha256: %v", err)
	}
}

// TestReproducible: the input's order does not matter, the content does,
// and the namespace follows the content.
func TestReproducible(t *testing.T) {
	in := input()
	a, err := sbom.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	rev := input()
	for i, j := 0, len(rev.Debs)-1; i < j; i, j = i+1, j-1 {
		rev.Debs[i], rev.Debs[j] = rev.Debs[j], rev.Debs[i]
	}
	rev.Containers[0], rev.Containers[2] = rev.Containers[2], rev.Containers[0]
	b, err := sbom.Marshal(rev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("the order of the input changed the document")
	}
	changed := input()
	changed.Debs[0].Version = "14.2.0-20"
	c, err := sbom.Marshal(changed)
	if err != nil {
		t.Fatal(err)
	}
	if ns(t, a) == ns(t, c) || !strings.HasPrefix(ns(t, a), sbom.NamespaceBase+"demo-0.1.0-") {
		t.Errorf("namespaces %s and %s", ns(t, a), ns(t, c))
	}
}

func ns(t *testing.T, data []byte) string {
	var d struct {
		NS string `json:"documentNamespace"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	return d.NS
}

func TestRefusesIncompleteInput(t *testing.T) {
	for name, mut := range map[string]func(*sbom.Input){
		"no image sha":     func(in *sbom.Input) { in.Image.SHA256 = "" },
		"deb without sha":  func(in *sbom.Input) { in.Debs[0].SHA256 = "" },
		"duplicate deb":    func(in *sbom.Input) { in.Debs = append(in.Debs, in.Debs[0]) },
		"bad digest":       func(in *sbom.Input) { in.Containers[0].Digest = "md5:00" },
		"container source": func(in *sbom.Input) { in.Containers[0].Source = "" },
	} {
		in := input()
		mut(&in)
		if _, err := sbom.Marshal(in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestContainerNames(t *testing.T) {
	for _, c := range []struct{ source, purl string }{
		{"redis:7", "pkg:oci/redis@D?arch=arm64&repository_url=docker.io/library/redis&tag=7"},
		{"traefik/whoami", "pkg:oci/whoami@D?arch=arm64&repository_url=docker.io/traefik/whoami"},
		{"ghcr.io/Org/App:v1@sha256:" + sumB, "pkg:oci/app@D?arch=arm64&repository_url=ghcr.io/Org/App&tag=v1"},
		{"127.0.0.1:5000/edge/redis:7", "pkg:oci/redis@D?arch=arm64&repository_url=127.0.0.1:5000/edge/redis&tag=7"},
		{"localhost:5000/x", "pkg:oci/x@D?arch=arm64&repository_url=localhost:5000/x"},
		{"docker-archive:dl/app.tar", "pkg:oci/c@D?arch=arm64"},
		{"docker-archive:dl/app.tar:App_1", "pkg:oci/c@D?arch=arm64&tag=App_1"},
		{"oci:dl/my:layout:v2", "pkg:oci/c@D?arch=arm64&tag=v2"},
		{"oci:dl/host:5000/layout", "pkg:oci/c@D?arch=arm64"},
		{"docker.io/essensyshub/essensys-backend:V.1.3.0", "pkg:oci/essensys-backend@D?arch=arm64&repository_url=docker.io/essensyshub/essensys-backend&tag=V.1.3.0"},
		{"quay.io/prometheus/node-exporter@sha256:" + sumB, "pkg:oci/node-exporter@D?arch=arm64&repository_url=quay.io/prometheus/node-exporter"},
		{"localhost/app:1", "pkg:oci/app@D?arch=arm64&repository_url=localhost/app&tag=1"},
	} {
		r, err := sbom.ParseContainer("c", c.source, "sha256:"+sumA)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Replace(r.PURL(), "sha256%3A"+sumA, "D", 1); got != c.purl {
			t.Errorf("%s: %s, want %s", c.source, got, c.purl)
		}
	}
}

// TestArchiveOfEachPackage: a package locked from another archive than the
// main suite (a security fix) says so in its comment.
func TestArchiveOfEachPackage(t *testing.T) {
	in := input()
	in.Debs[1].Archive = "trixie-security"
	data, err := sbom.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"locked Debian package from trixie-security", "locked Debian package from trixie\""} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("the document has no %q", want)
		}
	}
}
