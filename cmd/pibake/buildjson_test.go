package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/pibake/pibake/builder"
	"github.com/pibake/pibake/manifest"
)

// TestBuildJSON: build --json prints one object a program reads back:
// where the build went, the manifest and the stages' times.
func TestBuildJSON(t *testing.T) {
	res := &builder.Result{OutDir: "out/demo-pi4", Image: "out/demo-pi4/demo.img",
		Manifest: &manifest.Manifest{Image: "demo", Version: "1.2.3", Board: "pi4"},
		Stages:   []builder.StageTime{{Name: "rootfs", Elapsed: 1500 * time.Millisecond}}}
	var out bytes.Buffer
	if err := printBuildJSON(&out, res, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	var got struct {
		OutDir   string  `json:"out_dir"`
		Image    string  `json:"image"`
		Seconds  float64 `json:"seconds"`
		Manifest struct {
			Image   string `json:"image"`
			Version string `json:"version"`
			Board   string `json:"board"`
		} `json:"manifest"`
		Stages []struct {
			Name    string `json:"name"`
			Elapsed int64  `json:"elapsed_ns"`
		} `json:"stages"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if got.OutDir != "out/demo-pi4" || got.Image != "out/demo-pi4/demo.img" || got.Seconds != 2 || got.Manifest.Version != "1.2.3" || got.Manifest.Board != "pi4" ||
		len(got.Stages) != 1 || got.Stages[0].Name != "rootfs" || got.Stages[0].Elapsed != 1.5e9 {
		t.Errorf("build --json printed\n%s", out.String())
	}
}
