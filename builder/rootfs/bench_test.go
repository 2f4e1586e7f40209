package rootfs

import (
	"context"
	"io"
	"testing"
)

// BenchmarkTransform streams the synthetic base through the customisation.
func BenchmarkTransform(b *testing.B) {
	basePath, spec := setup(b)
	base, err := Scan(context.Background(), basePath)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := base.Write(context.Background(), spec, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
