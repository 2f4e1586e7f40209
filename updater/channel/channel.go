// Package channel is the signed channel document of an update repository:
// what a device may install next. The host signs it (pibake publish); the
// device verifies it before it fetches a byte of payload: signature by a
// trusted key, then board, expiry and serial (no downgrade, no replay).
//
// The package also holds the table of a repository's files (repo.go): the
// document is at DocumentPath and, next to it, its SignaturePath holds a
// minisign signature whose trusted comment repeats the channel and serial.
// Documents are limited to MaxSize bytes.
package channel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"aead.dev/minisign"
)

// Format is the version of the document layout.
const Format = 1

// MaxSize bounds a channel document and its signature: a device reads no
// more before verifying.
const MaxSize = 1 << 20

// Errors a device branches on.
var (
	ErrSignature     = errors.New("channel document signature is not valid")
	ErrUnknownKey    = errors.New("channel document signed by a key this device does not trust")
	ErrDowngrade     = errors.New("channel document serial is older than the one installed")
	ErrReplay        = errors.New("channel document serial was already seen")
	ErrExpired       = errors.New("channel document has expired")
	ErrBoardMismatch = errors.New("release is not for this board")
	ErrMalformed     = errors.New("malformed channel document")
	ErrWrongChannel  = errors.New("channel document is for another channel or image")
	ErrSerialJump    = errors.New("channel document serial jumps too far ahead")
	ErrRevokedKey    = errors.New("channel document signed by a revoked key")
)

// MaxSerialJump bounds how far a document's serial may be ahead of the
// last one the device committed: publish counts up by one, so a serial
// near the top of the range (a leaked key, or a mistake) cannot end the
// channel for every device that accepted it.
const MaxSerialJump = 1 << 20

// Artifact is one content-addressed payload of a release: the first Size
// bytes of the slot partition it is written to.
type Artifact struct {
	Name   string `json:"name"`   // the partition it goes to: "boot" or "root" (of the inactive slot)
	Path   string `json:"path"`   // relative to the repository: BlobPath(SHA256)
	Size   int64  `json:"size"`   // bytes
	SHA256 string `json:"sha256"` // hex
	// PartitionSize is the smallest partition the artifact works in (a
	// FAT filesystem records the size it was made for).
	PartitionSize int64 `json:"partition_size"`
	// Board is the board the artifact is for, in a release of several
	// boards (each artifact names one of the document's boards); empty,
	// and left out of the JSON, when the artifacts fit every board.
	Board string `json:"board,omitempty"`
}

// ArtifactsFor are the artifacts a device of board installs: those of
// its board in a release of several boards, else all of them.
func (d *Document) ArtifactsFor(board string) []Artifact {
	var out []Artifact
	for _, a := range d.Artifacts {
		if a.Board == "" || a.Board == board {
			out = append(out, a)
		}
	}
	return out
}

// BootArtifact names a slot's own boot artifact ("boot.a"): tryboot
// images carry one per slot (each slot's cmdline.txt names its root); a
// plain "boot" fits either slot.
func BootArtifact(slot string) string { return "boot." + slot }

// Document says what a channel currently offers.
type Document struct {
	Format    int        `json:"format"`
	Channel   string     `json:"channel"`
	Image     string     `json:"image"`
	Version   string     `json:"version"`
	Serial    uint64     `json:"serial"`
	Expires   time.Time  `json:"expires"`
	Boards    []string   `json:"boards"`
	Rollout   float64    `json:"rollout"` // fraction of devices, 0 < rollout <= 1
	Artifacts []Artifact `json:"artifacts"`
	// Waves, if any, widen the rollout by themselves: see RolloutAt.
	// Rollout is then the first wave's fraction. Both fields are left
	// out of the JSON when unused, so a document without waves or a
	// halt has the bytes of format 1 before them (docs/fleet.md says
	// what agents that predate them do with one that has them).
	Waves []Wave `json:"waves,omitempty"`
	// Halted stops the release: a device that has not committed it does
	// not start it (pibake rollout halt).
	Halted bool `json:"halted,omitempty"`
}

// Wave is one step of a rollout: from From on (by the device's clock),
// Fraction of the devices take the release.
type Wave struct {
	Fraction float64   `json:"fraction"`
	From     time.Time `json:"from"`
}

// MaxWaves bounds a document's waves.
const MaxWaves = 16

// RolloutAt is the fraction of devices that take the release at now:
// the largest fraction whose wave has begun. The first wave applies from
// the start whatever the clock says (a device whose clock was never set
// still takes it); later ones apply once now reaches their From. Without
// waves, it is Rollout.
func (d *Document) RolloutAt(now time.Time) float64 {
	if len(d.Waves) == 0 {
		return d.Rollout
	}
	f := d.Waves[0].Fraction
	for _, w := range d.Waves[1:] {
		if !now.Before(w.From) {
			f = w.Fraction
		}
	}
	return f
}

var (
	reName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	reHex  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Validate checks a document's fields (not its signature).
func (d *Document) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	switch {
	case d.Format != Format:
		return bad("format %d, this agent reads format %d", d.Format, Format)
	case CheckName(d.Channel) != nil:
		return bad("%v", CheckName(d.Channel))
	case d.Image == "" || d.Version == "":
		return bad("image and version are required")
	case d.Serial == 0:
		return bad("serial must be positive")
	case d.Expires.IsZero():
		return bad("expires is required")
	case len(d.Boards) == 0:
		return bad("no boards")
	case !(d.Rollout > 0 && d.Rollout <= 1):
		return bad("rollout %v outside (0, 1]", d.Rollout)
	case len(d.Artifacts) == 0:
		return bad("no artifacts")
	}
	if err := d.validateWaves(); err != nil {
		return bad("%v", err)
	}
	if err := d.validateBoards(); err != nil {
		return bad("%v", err)
	}
	seen := map[string]bool{}
	for _, a := range d.Artifacts {
		if !reName.MatchString(a.Name) || seen[a.Board+"/"+a.Name] {
			return bad("artifact name %q missing or repeated", a.Name)
		}
		seen[a.Board+"/"+a.Name] = true
		if !reHex.MatchString(a.SHA256) || a.Size <= 0 || a.Path != BlobPath(a.SHA256) || a.PartitionSize < a.Size {
			return bad("artifact %s: want a positive size no larger than its partition size, a sha256 and the path "+blobPattern, a.Name)
		}
	}
	return nil
}

// validateBoards checks the artifacts' boards: none (they fit every
// board), or each artifact one of the document's boards and each board
// some artifacts.
func (d *Document) validateBoards() error {
	tagged := 0
	for _, a := range d.Artifacts {
		if a.Board == "" {
			continue
		}
		tagged++
		if !slices.Contains(d.Boards, a.Board) {
			return fmt.Errorf("artifact %s is for board %q, not one of the release's boards %s", a.Name, a.Board, strings.Join(d.Boards, ", "))
		}
	}
	if tagged == 0 {
		return nil
	}
	if tagged != len(d.Artifacts) {
		return fmt.Errorf("%d of %d artifacts name a board: all or none must", tagged, len(d.Artifacts))
	}
	for _, b := range d.Boards {
		if len(d.ArtifactsFor(b)) == 0 {
			return fmt.Errorf("board %s has no artifacts", b)
		}
	}
	return nil
}

// validateWaves checks that the waves widen the rollout: at most
// MaxWaves, each fraction in (0, 1], fractions and times strictly
// increasing, none from after the expiry, and Rollout the first fraction.
func (d *Document) validateWaves() error {
	if len(d.Waves) == 0 {
		return nil
	}
	if len(d.Waves) > MaxWaves {
		return fmt.Errorf("%d waves, at most %d", len(d.Waves), MaxWaves)
	}
	for i, w := range d.Waves {
		switch {
		case !(w.Fraction > 0 && w.Fraction <= 1):
			return fmt.Errorf("wave %d: fraction %v outside (0, 1]", i+1, w.Fraction)
		case w.From.IsZero() || !w.From.Before(d.Expires):
			return fmt.Errorf("wave %d: from %s, want a time before the expiry %s", i+1, w.From.UTC().Format(time.RFC3339), d.Expires.UTC().Format(time.RFC3339))
		case i > 0 && (w.Fraction <= d.Waves[i-1].Fraction || !w.From.After(d.Waves[i-1].From)):
			return fmt.Errorf("wave %d: want a larger fraction and a later time than wave %d", i+1, i)
		}
	}
	if d.Rollout != d.Waves[0].Fraction {
		return fmt.Errorf("rollout %v, want the first wave's fraction %v", d.Rollout, d.Waves[0].Fraction)
	}
	return nil
}

// trustedComment binds the signature to the channel and serial, so a valid
// signature cannot be moved onto another document.
func trustedComment(d *Document) string {
	return fmt.Sprintf("pibake channel=%s serial=%d", d.Channel, d.Serial)
}

// Sign validates d and returns the document bytes and their signature.
func Sign(d *Document, key minisign.PrivateKey) (doc, sig []byte, err error) {
	if err := d.Validate(); err != nil {
		return nil, nil, err
	}
	doc, err = json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	doc = append(doc, '\n')
	sig = minisign.SignWithComments(key, doc, trustedComment(d), "signature from pibake publish")
	return doc, sig, nil
}

// Check is what a device knows when it verifies a document.
type Check struct {
	Trusted []minisign.PublicKey
	Board   string
	// Channel and Image are what the device asked for: a document for any
	// other is refused, whatever name it was served under. Image "" (an
	// image built before images named themselves) skips the image check.
	Channel string
	Image   string
	Now     time.Time
	// LastSerial is the serial of the release last committed from this
	// channel; 0 for none.
	LastSerial uint64
	// Reinstall accepts LastSerial itself: the device runs a fallback and
	// reinstalls the channel's release into its broken slot.
	Reinstall bool
	// Revoked lists key IDs the image refuses even if Trusted has them.
	Revoked []uint64
}

// VerifySigned checks only what a signature proves: size, the signature
// by one of the keys, the syntax, and the trusted comment. Publish uses it
// to continue a channel's serial from the last document it signed itself.
func VerifySigned(doc, sig []byte, trusted []minisign.PublicKey) (*Document, error) {
	return verifySigned(doc, sig, trusted, nil)
}

// verifySigned is VerifySigned that also refuses the revoked key IDs, even
// when trusted lists the key.
func verifySigned(doc, sig []byte, trusted []minisign.PublicKey, revoked []uint64) (*Document, error) {
	s, err := checkSignature(doc, sig, trusted, revoked)
	if err != nil {
		return nil, err
	}
	var d Document
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	if s.TrustedComment != trustedComment(&d) {
		return nil, fmt.Errorf("%w: trusted comment %q does not match the document", ErrSignature, s.TrustedComment)
	}
	return &d, nil
}

// checkSignature checks the size of doc and sig and that sig is a valid
// signature of doc by a trusted, unrevoked key.
func checkSignature(doc, sig []byte, trusted []minisign.PublicKey, revoked []uint64) (*minisign.Signature, error) {
	if len(doc) > MaxSize || len(sig) > MaxSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformed, MaxSize)
	}
	var s minisign.Signature
	if err := s.UnmarshalText(sig); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	if slices.Contains(revoked, s.KeyID) {
		return nil, fmt.Errorf("%w (key id %016X)", ErrRevokedKey, s.KeyID)
	}
	var key *minisign.PublicKey
	for i := range trusted {
		if trusted[i].ID() == s.KeyID {
			key = &trusted[i]
			break
		}
	}
	if key == nil {
		return nil, fmt.Errorf("%w (key id %016X)", ErrUnknownKey, s.KeyID)
	}
	if !minisign.Verify(*key, doc, sig) {
		return nil, ErrSignature
	}
	return &s, nil
}

// Verify checks a document against the device's trusted keys and state
// and returns it only if it may be acted on. Order: size, signature (and
// key), syntax, trusted comment, channel and image, board, expiry, serial.
func Verify(doc, sig []byte, c Check) (*Document, error) {
	dp, err := verifySigned(doc, sig, c.Trusted, c.Revoked)
	if err != nil {
		return nil, err
	}
	d := *dp
	if d.Channel != c.Channel || (c.Image != "" && d.Image != c.Image) {
		return nil, fmt.Errorf("%w: it is %s on channel %s, this device follows %s on channel %s", ErrWrongChannel, d.Image, d.Channel, orAny(c.Image), c.Channel)
	}
	found := false
	for _, b := range d.Boards {
		found = found || b == c.Board
	}
	if !found {
		return nil, fmt.Errorf("%w: %s %s is for %s, this device is %s", ErrBoardMismatch, d.Image, d.Version, strings.Join(d.Boards, ", "), c.Board)
	}
	if !c.Now.Before(d.Expires) {
		return nil, fmt.Errorf("%w: expired %s", ErrExpired, d.Expires.UTC().Format(time.RFC3339))
	}
	switch {
	case d.Serial < c.LastSerial:
		return nil, fmt.Errorf("%w: serial %d < %d", ErrDowngrade, d.Serial, c.LastSerial)
	case d.Serial == c.LastSerial && !c.Reinstall:
		return nil, fmt.Errorf("%w: serial %d", ErrReplay, d.Serial)
	case d.Serial-c.LastSerial > MaxSerialJump:
		return nil, fmt.Errorf("%w: serial %d after %d (at most %d ahead)", ErrSerialJump, d.Serial, c.LastSerial, MaxSerialJump)
	}
	return &d, nil
}

func orAny(image string) string {
	if image == "" {
		return "any image"
	}
	return image
}
