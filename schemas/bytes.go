package schemas

import (
	"encoding/base64"
	"errors"
	"fmt"
	"unicode/utf8"
)

// NewBytes wraps b so that it survives a JSON round trip exactly: as Text when
// b is valid UTF-8 (an empty, non-nil b gives Text ""), else as standard base64.
// It returns nil for a nil b, so that "no bytes" (a tombstone, a missing key)
// stays distinct from "zero bytes" once marshalled as null.
func NewBytes(b []byte) *Bytes {
	if b == nil {
		return nil
	}
	if utf8.Valid(b) {
		s := string(b)
		return &Bytes{Text: &s}
	}
	s := base64.StdEncoding.EncodeToString(b)
	return &Bytes{Base64: &s}
}

// Raw returns the original bytes: it is the exact inverse of NewBytes, so a nil
// *Bytes gives nil and Text "" gives an empty, non-nil slice. It fails when
// both or neither of Text and Base64 are set, or when Base64 is not valid.
func (b *Bytes) Raw() ([]byte, error) {
	switch {
	case b == nil:
		return nil, nil
	case b.Text != nil && b.Base64 != nil:
		return nil, errors.New("bytes have both text and base64")
	case b.Text != nil:
		return []byte(*b.Text), nil
	case b.Base64 != nil:
		raw, err := base64.StdEncoding.Strict().DecodeString(*b.Base64)
		if err != nil {
			return nil, fmt.Errorf("decoding base64: %w", err)
		}
		return raw, nil
	default:
		return nil, errors.New("bytes have neither text nor base64")
	}
}
