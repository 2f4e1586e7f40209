package channel

import "strings"

// The files of an update repository, the one place their names are
// spelled. Paths are relative to the repository's root and use slashes:
// a device appends them to its source's base URL or bundle, publish
// turns them into a folder's paths with filepath.FromSlash.
//
//	blobs/sha256/<hex>                   BlobPath: artifacts, chunk indexes and patches, named by their sha256 (never rewritten)
//	channels/<name>.json                 DocumentPath: the signed channel document (Document)
//	channels/<name>.json.minisig         SignaturePath of it
//	channels/<name>.chunks.json          ChunksPath: the signed chunk document of the same release (Chunks)
//	channels/<name>.chunks.json.minisig  SignaturePath of it
//	channels/<name>.history.json         HistoryPath: the publisher's record of earlier releases
//	channels/<name>.history.json.minisig SignaturePath of it (publish trusts only a signed history)
//	channels/<name>.cost.json            CostPath: what a device on each of them downloads
//
// Devices read the documents, their signatures and the blobs; the history
// and the cost are for the publisher alone.
const (
	BlobsDir    = "blobs/sha256"
	ChannelsDir = "channels"
	SigSuffix   = ".minisig"

	documentExt = ".json"
	chunksExt   = ".chunks.json"
	historyExt  = ".history.json"
	costExt     = ".cost.json"

	blobPattern = BlobsDir + "/<sha256>" // BlobPath, as error messages spell it
)

// BlobPath is where the blob with this sha256 (hex) lives.
func BlobPath(sum string) string { return BlobsDir + "/" + sum }

// IsBlobPath reports whether p is the path of a blob: BlobPath of a
// lower-case hex sha256, nothing else.
func IsBlobPath(p string) bool {
	sum, ok := strings.CutPrefix(p, BlobsDir+"/")
	return ok && reHex.MatchString(sum)
}

// DocumentPath is where a channel's signed document lives.
func DocumentPath(channel string) string { return ChannelsDir + "/" + channel + documentExt }

// DocumentName is the channel whose document path p is: any
// channels/<name>.json with no further folder.
func DocumentName(p string) (string, bool) {
	c, ok := strings.CutPrefix(p, ChannelsDir+"/")
	if !ok || !strings.HasSuffix(c, documentExt) || strings.Contains(c, "/") {
		return "", false
	}
	return strings.TrimSuffix(c, documentExt), true
}

// SignaturePath is where the minisign signature of the document at p
// lives, next to it (p may also be a path in a folder).
func SignaturePath(p string) string { return p + SigSuffix }

// ChunksPath is where a channel's chunk document lives, next to the
// channel document.
//
// The chunk document is separate because a device of format 1 refuses a
// channel document with fields it does not know (and artifacts it does
// not know): delta updates must not lock out the agents in the field. A
// device that does not know this file never reads it.
func ChunksPath(channel string) string { return ChannelsDir + "/" + channel + chunksExt }

// HistoryPath is where publish keeps a channel's earlier releases.
func HistoryPath(channel string) string { return ChannelsDir + "/" + channel + historyExt }

// CostPath is where publish records what the newest release of a channel
// costs the devices running each earlier one.
func CostPath(channel string) string { return ChannelsDir + "/" + channel + costExt }
