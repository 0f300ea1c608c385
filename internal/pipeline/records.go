package pipeline

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"

	fastjson "github.com/segmentio/encoding/json"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/consumer"
	"github.com/acme-sp/wholesale-provisioner/internal/strictjson"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// EventID derives an outcome's event id from its order: a name-based UUID
// (version 5 layout over SHA-1) of the order id, the digest of its content and
// its replay count. A redelivered order yields the same id, so consumers of the
// outcomes topic can drop duplicates; a replayed dead letter, or a different
// order that reused the id, yields a new one.
func EventID(orderID string, digest [sha256.Size]byte, replay int) string {
	return eventID("wholesale-provisioner/outcome/v1\x00", orderID, digest, replay)
}

// CustomerEventID is EventID for customer outcomes, in a name space of
// their own: a customer order and a subscriber order may share an id.
func CustomerEventID(orderID string, digest [sha256.Size]byte, replay int) string {
	return eventID("wholesale-provisioner/customer-outcome/v1\x00", orderID, digest, replay)
}

func eventID(space, orderID string, digest [sha256.Size]byte, replay int) string {
	var in [256]byte
	b := append(in[:0], space...)
	b = append(b, orderID...)
	b = append(b, 0)
	b = append(b, digest[:]...)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(replay), 10)
	return uuidOf(sha1.Sum(b))
}

// uuidOf lays a SHA-1 sum out as a name-based UUID (version 5).
func uuidOf(sum [sha1.Size]byte) string {
	sum[6] = (sum[6] & 0x0f) | 0x50
	sum[8] = (sum[8] & 0x3f) | 0x80
	var id [36]byte
	hex.Encode(id[0:8], sum[0:4])
	hex.Encode(id[9:13], sum[4:6])
	hex.Encode(id[14:18], sum[6:8])
	hex.Encode(id[19:23], sum[8:10])
	hex.Encode(id[24:36], sum[10:16])
	id[8], id[13], id[18], id[23] = '-', '-', '-', '-'
	return string(id[:])
}

// EventIDOf returns the event id the pipeline gives the outcome of msg.
func EventIDOf(msg kafka.Message) (string, error) {
	o, err := schemas.DecodeOrder(msg.Value)
	if err != nil {
		return "", err
	}
	return EventID(o.OrderID, orderDigest(o), ReplayCount(msg)), nil
}

// orderDigest identifies an order's content independently of its JSON layout
// (field order, spacing): the digest of the decoded order re-encoded. The
// encoding must stay byte for byte what encoding/json.Marshal writes, or event
// ids change across releases: TestEventIDsStayTheSame pins them.
func orderDigest(o schemas.Order) [sha256.Size]byte { return digestOf(o) }

// digestOf is the digest of v as encoding/json.Marshal writes it.
func digestOf(v any) [sha256.Size]byte {
	bp := digestBuffers.Get().(*[]byte)
	defer digestBuffers.Put(bp)
	// The flags are fastjson.Marshal's, which match encoding/json.Marshal.
	b, err := fastjson.Append((*bp)[:0], v, fastjson.EscapeHTML|fastjson.SortMapKeys)
	if err != nil {
		return [sha256.Size]byte{} // cannot happen: a plain struct
	}
	*bp = b
	return sha256.Sum256(b)
}

var digestBuffers = sync.Pool{New: func() any { return new([]byte) }}

// HeaderReplayCount counts how often a dead letter was replayed into the
// orders topic; dlq replay sets it.
const HeaderReplayCount = "replay-count"

// ReplayCount reads the record's replay-count header (0 when absent or unreadable).
func ReplayCount(msg kafka.Message) int {
	for _, h := range msg.Headers {
		if h.Key == HeaderReplayCount {
			if n, err := strconv.Atoi(string(h.Value)); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// OrderKey is the ordering key of an order record: its Kafka key, or, for a
// record published without one, its customerId and email, so that one
// subscriber's orders still run in order. Records with neither are not ordered.
func OrderKey(msg kafka.Message) string {
	if len(msg.Key) > 0 {
		return string(msg.Key)
	}
	// Bounded like the order's own decoding: this runs as the record is
	// fetched, before its size is checked.
	doc, err := strictjson.Parse(msg.Value, schemas.OrderLimits)
	obj, _ := doc.(map[string]any)
	customer, _ := obj["customerId"].(string)
	if ext, _ := obj["customerExternalId"].(string); customer == "" && ext != "" {
		// An order naming its customer by the billing system's id: the
		// prefix keeps it apart from a Webex id that looks the same.
		customer = "external:" + ext
	}
	email, _ := obj["email"].(string)
	if err == nil && customer != "" && email != "" {
		return customer + "/" + strings.ToLower(email)
	}
	return consumer.DefaultKey(msg)
}
