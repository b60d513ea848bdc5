package crm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/socialcrm/socialcrm/vault"
)

// Attachment bytes reach the Storage only sealed: the Store cuts them into
// chunks of chunkSize bytes and seals each with the vault, bound to the
// tenant, the attachment and the chunk's place ("bytes/<n>", the final one
// "bytes/<n>/last"), so that chunks can be neither reordered, moved to
// another attachment, nor cut off at the end without Open failing. The
// stored object is the sequence of sealed chunks, each preceded by its
// length (4 bytes, big-endian). Destroying the tenant's keys makes the
// stored bytes unreadable, in every copy of the storage.
const chunkSize = 64 << 10

// sealingReader reads plaintext from r and yields the sealed stream.
type sealingReader struct {
	ctx  context.Context
	v    *vault.Vault
	id   string
	r    io.Reader
	n    int    // index of the next chunk
	next []byte // plaintext read ahead: the chunk after the current one
	eof  bool   // r is exhausted (next holds its last bytes)
	out  bytes.Buffer
	done bool
	err  error
}

func newSealingReader(ctx context.Context, v *vault.Vault, attachmentID string, r io.Reader) *sealingReader {
	return &sealingReader{ctx: ctx, v: v, id: attachmentID, r: r}
}

// fill reads the next chunk of plaintext into a new slice.
func (s *sealingReader) fill() ([]byte, error) {
	buf := make([]byte, chunkSize)
	n, err := io.ReadFull(s.r, buf)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		s.eof = true
		err = nil
	}
	return buf[:n], err
}

func (s *sealingReader) Read(p []byte) (int, error) {
	for s.out.Len() == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if s.done {
			return 0, io.EOF
		}
		s.err = s.sealNext()
	}
	return s.out.Read(p)
}

// sealNext seals one chunk into out.
func (s *sealingReader) sealNext() error {
	if s.n == 0 && s.next == nil {
		first, err := s.fill()
		if err != nil {
			return err
		}
		s.next = first
	}
	cur := s.next
	last := s.eof
	if !last {
		following, err := s.fill()
		if err != nil {
			return err
		}
		if len(following) == 0 && s.eof {
			last = true
		}
		s.next = following
	}
	sealed, err := s.v.Seal(s.ctx, cur, vault.Binding{Record: s.id, Field: chunkField(s.n, last)})
	if err != nil {
		return fmt.Errorf("crm: seal attachment: %w", err)
	}
	b := sealed.Bytes()
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(b)))
	s.out.Write(l[:])
	s.out.Write(b)
	s.n++
	s.done = last
	return nil
}

func chunkField(n int, last bool) string {
	if last {
		return fmt.Sprintf("bytes/%d/last", n)
	}
	return fmt.Sprintf("bytes/%d", n)
}

// errSealedBytes is returned when stored attachment bytes do not open: not
// sealed for this attachment, altered, truncated, or their key destroyed.
var errSealedBytes = errors.New("crm: attachment bytes cannot be opened")

// openingReader reads a sealed stream from r and yields the plaintext.
type openingReader struct {
	ctx  context.Context
	v    *vault.Vault
	id   string
	r    io.ReadCloser
	n    int
	out  []byte
	last bool
	err  error
}

func newOpeningReader(ctx context.Context, v *vault.Vault, attachmentID string, r io.ReadCloser) *openingReader {
	return &openingReader{ctx: ctx, v: v, id: attachmentID, r: r}
}

func (o *openingReader) Read(p []byte) (int, error) {
	for len(o.out) == 0 {
		if o.err != nil {
			return 0, o.err
		}
		if o.last {
			var one [1]byte
			if n, _ := io.ReadFull(o.r, one[:]); n > 0 {
				o.err = errSealedBytes // bytes after the last chunk
				continue
			}
			return 0, io.EOF
		}
		o.err = o.openNext()
	}
	n := copy(p, o.out)
	o.out = o.out[n:]
	return n, nil
}

func (o *openingReader) openNext() error {
	var l [4]byte
	if _, err := io.ReadFull(o.r, l[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return errSealedBytes // the stream ends before its last chunk
		}
		return fmt.Errorf("crm: read attachment: %w", err)
	}
	size := binary.BigEndian.Uint32(l[:])
	if size > chunkSize+1024 {
		return errSealedBytes
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(o.r, b); err != nil {
		return errSealedBytes
	}
	sealed, err := vault.ParseSealed(b)
	if err != nil {
		return errSealedBytes
	}
	for _, last := range []bool{false, true} {
		sec, err := o.v.Open(o.ctx, sealed, vault.Binding{Record: o.id, Field: chunkField(o.n, last)})
		if err != nil {
			continue
		}
		o.out = append([]byte(nil), sec.Reveal()...)
		sec.Wipe()
		o.n++
		o.last = last
		return nil
	}
	return errSealedBytes
}

func (o *openingReader) Close() error { return o.r.Close() }
