package e2e

import (
	"strings"
	"testing"
)

// TestDocker boots images/demo-docker.yaml, the demo with Docker as its
// container runtime, twice. The first boot loads the hello image out of
// the slot into docker's store on /data and runs it healthy; the second
// finds the image loaded (nothing copied) and the data volume's file of
// the first boot.
func TestDocker(t *testing.T) {
	story(t, laneUpdate)
	built, err := buildVariant(t, variant{def: "demo-docker", overlay: "e2e", service: "e2e-report"})
	if err != nil {
		t.Fatal(err)
	}
	img := copyImage(t, built, 0)
	first := boot(t, img, "docker-first-boot")
	expect(t, first, "state", "running")
	expect(t, first, "failed", "")
	expect(t, first, "runtime", "docker")
	expect(t, first, "hello", "active")
	const says = "hello from pibake: container version 0.1.0; data volume first written by 0.1.0"
	expect(t, first, "hellosays", says)
	if !strings.Contains(first.fields["containers"], "hello Up") || !strings.Contains(first.fields["containers"], "(healthy)") {
		t.Errorf("docker ps: %q", first.fields["containers"])
	}
	if !strings.Contains(first.fields["dockerload"], "hello: loading image sha256:") || !strings.Contains(first.fields["dockerimages"], "pibake.local/hello:") {
		t.Errorf("first boot did not load the image: load %q, images %q", first.fields["dockerload"], first.fields["dockerimages"])
	}
	t.Logf("docker, first boot: images loaded at %s ms, hello healthy at %s ms, multi-user at %s ms after the kernel started; loader said %q",
		first.fields["loaded_at_ms"], first.fields["hello_at_ms"], first.fields["multiuser_at_ms"], first.fields["dockerload"])

	second := boot(t, img, "docker-second-boot")
	expect(t, second, "state", "running")
	expect(t, second, "hello", "active")
	expect(t, second, "hellosays", says)
	if !strings.Contains(second.fields["containers"], "(healthy)") {
		t.Errorf("second boot: hello.service active but docker ps says %q", second.fields["containers"])
	}
	if !strings.Contains(second.fields["dockerload"], "hello: image sha256:") || !strings.Contains(second.fields["dockerload"], "already loaded") {
		t.Errorf("second boot loaded the image again: %q", second.fields["dockerload"])
	}
	t.Logf("docker, second boot: images loaded at %s ms, hello healthy at %s ms, multi-user at %s ms after the kernel started",
		second.fields["loaded_at_ms"], second.fields["hello_at_ms"], second.fields["multiuser_at_ms"])
}
