package publish

import (
	"encoding/json"
	"os"
	"path/filepath"

	"aead.dev/minisign"
	"github.com/pibake/pibake/internal/atomicfile"
	"github.com/pibake/pibake/updater/channel"
)

// signed are a release's two signed documents, the channel document and
// the chunk document that goes with it, and the channel's signed history.
type signed struct {
	doc, sig           []byte
	chunkDoc, chunkSig []byte
	hist, histSig      []byte
}

// sign signs the channel document d, the chunk document listing the
// artifacts' chunk indexes and the patches to them, and the history.
func sign(d *channel.Document, indexes []channel.ChunkIndex, patches []channel.PatchRef, hist *History, key minisign.PrivateKey) (*signed, error) {
	doc, sig, err := channel.Sign(d, key)
	if err != nil {
		return nil, err
	}
	chunkDoc, chunkSig, err := channel.SignChunks(&channel.Chunks{Format: channel.ChunksFormat, Channel: d.Channel, Serial: d.Serial, Indexes: indexes, Patches: patches}, d, key)
	if err != nil {
		return nil, err
	}
	h, hsig, err := signHistory(hist, key)
	if err != nil {
		return nil, err
	}
	return &signed{doc: doc, sig: sig, chunkDoc: chunkDoc, chunkSig: chunkSig, hist: h, histSig: hsig}, nil
}

// costReport is the cost record of the release d: its full size and what
// a device running each earlier release downloads.
func costReport(d *channel.Document, from []Cost) CostReport {
	report := CostReport{Format: CostFormat, Channel: d.Channel, Serial: d.Serial, Version: d.Version, From: from}
	for _, a := range d.Artifacts {
		report.Full += a.Size
	}
	return report
}

// write puts the release into the channel's files, each replaced
// atomically, in the order that keeps every moment consistent for a
// reader: the chunk document, the publisher's records, and last the
// channel document that makes the release current.
func (s *signed) write(repo, name string, report CostReport) error {
	if err := os.MkdirAll(filepath.Join(repo, channel.ChannelsDir), 0o755); err != nil {
		return err
	}
	// The chunk document first: a device that sees the new channel
	// document finds its chunks. One that reads the old chunk document
	// with the new channel document (or the reverse) sees another serial
	// and downloads the artifacts in full.
	if err := writeSigned(filepath.Join(repo, filepath.FromSlash(channel.ChunksPath(name))), s.chunkDoc, s.chunkSig); err != nil {
		return err
	}
	// The publisher's records, before the channel document that makes
	// the release current: its cost, and the history with it first (the
	// history's serial is then never below the document's).
	b, err := json.MarshalIndent(report, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(repo, filepath.FromSlash(channel.CostPath(name))), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := writeHistory(filepath.Join(repo, filepath.FromSlash(channel.HistoryPath(name))), s.hist, s.histSig); err != nil {
		return err
	}
	return writeSigned(filepath.Join(repo, filepath.FromSlash(channel.DocumentPath(name))), s.doc, s.sig)
}

// writeSigned writes a document's signature, then the document: a reader
// of the new document finds its signature.
func writeSigned(path string, doc, sig []byte) error {
	if err := atomicfile.Write(channel.SignaturePath(path), sig, 0o644); err != nil {
		return err
	}
	return atomicfile.Write(path, doc, 0o644)
}
