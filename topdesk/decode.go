package topdesk

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// TOPdesk answers a create, update or get with its whole incident read model
// (dozens of fields and nested objects), of which Incident keeps sixteen.
// encoding/json scans such a body twice (once to find the end of the value,
// once to decode it) and reflects over every field it then drops. The
// decoder in this file reads *Incident and *[]Incident in one pass over the
// body, stores the fields of Incident and only checks the syntax of the rest.
//
// It keeps the semantics of json.NewDecoder(r).Decode(out) for these types,
// which FuzzDecodeIncident checks against encoding/json:
//   - one value is read and whatever follows it is ignored; an empty body is
//     io.EOF, a body that ends inside the value an error wrapping
//     io.ErrUnexpectedEOF, and a read error that happens before the value is
//     complete is returned as it is;
//   - invalid JSON anywhere in the value, skipped parts included, is an
//     error, and so is nesting deeper than encoding/json allows;
//   - keys match field names case-insensitively, with encoding/json's
//     folding; the last of duplicate keys wins;
//   - null leaves strings and bools alone and sets pointers to nil; values
//     of the wrong type are errors (reported only when the JSON is valid);
//   - strings are unescaped like encoding/json does (\u surrogate pairs
//     joined, invalid UTF-8 and lone surrogates replaced by U+FFFD);
//   - Time fields get (*Time).UnmarshalJSON with the raw value, and decoding
//     into a non-nil pointer or a non-empty slice reuses what is there.

const (
	// maxDepth is encoding/json's nesting limit for arrays and objects.
	maxDepth = 10000
	// minRead is the least a full buffer grows by, and the free space below
	// which compact makes room.
	minRead = 512
	// defaultBuffer is the first buffer size when the body's length is
	// unknown; maxFirstBuffer caps the first buffer when it is known. The
	// buffer grows only for a member or element that does not fit: what was
	// decoded is dropped between them.
	defaultBuffer  = 1 << 10
	maxFirstBuffer = 16 << 10
	// defaultStrings is the first guess of how many bytes the strings of an
	// incident take; later guesses use the previous incident, up to
	// maxStrings.
	defaultStrings = 512
	maxStrings     = 2 << 10
	// maxEmptyReads bounds consecutive reads that return no data and no
	// error, as bufio does.
	maxEmptyReads = 100
)

// decodeBody decodes one JSON value from the first maxResponseBody bytes of
// body into out, with the semantics of json.NewDecoder(r).Decode(out). size
// is the body's length if known (else -1); it only sizes the buffer. *Incident
// and *[]Incident use the one-pass decoder, other types encoding/json.
func decodeBody(body io.Reader, size int64, out any) error {
	switch v := out.(type) {
	case *Incident:
		d := newDecoder(body, maxResponseBody, size)
		return d.incidentDoc(v)
	case *[]Incident:
		d := newDecoder(body, maxResponseBody, size)
		return d.incidentListDoc(v)
	}
	return json.NewDecoder(io.LimitReader(body, maxResponseBody)).Decode(out)
}

// syntaxError is invalid JSON, or a body that ends inside the value, at a
// byte offset of the body.
type syntaxError struct {
	Offset int64  // of the offending byte, or the length of a cut body
	Msg    string // what is wrong
	Err    error  // io.ErrUnexpectedEOF for a cut body, else nil
}

func (e *syntaxError) Error() string { return errorText(e.Msg, e.Offset, e.Err) }

func (e *syntaxError) Unwrap() error { return e.Err }

// valueError is a well-formed JSON value, starting at a byte offset of the
// body, that does not fit the field it is decoded into.
type valueError struct {
	Offset int64  // where the value starts
	Msg    string // what is wrong
	Err    error  // the cause, e.g. from (*Time).UnmarshalJSON, or nil
}

func (e *valueError) Error() string { return errorText(e.Msg, e.Offset, e.Err) }

func (e *valueError) Unwrap() error { return e.Err }

func errorText(msg string, offset int64, cause error) string {
	if cause == nil {
		return fmt.Sprintf("json: %s at offset %d", msg, offset)
	}
	return fmt.Sprintf("json: %s at offset %d: %v", msg, offset, cause)
}

// decoder reads one JSON value from r. Positions are indices into buf; buf
// only grows while a member of an incident or an element of a list is
// decoded, so positions stay valid across reads. Between them (see compact)
// the consumed bytes are dropped.
type decoder struct {
	r       io.Reader
	remain  int64  // how much more of r may be read, as with io.LimitReader
	buf     []byte // bytes read; buf[pos:] is not consumed yet
	pos     int
	base    int64  // body offset of buf[0]
	rerr    error  // error of the last read; io.EOF at the end of the body
	saved   error  // first wrongly typed value; reported if the JSON is valid
	scratch []byte // unescaped strings

	// The incident being decoded keeps its strings in strs and assigns them
	// all from one string when its object ends (see setStrings); pending
	// says where each goes. Its new Refs and Times come from block.
	strs     strings.Builder
	lastStrs int // length of strs for the previous incident
	pending  [numStringSlots]pendingString
	set      uint16 // bit i: pending[i] is in use
	block    *incidentBlock
	used     uint16 // bit i: slot i of block was handed out
}

// String slots of an incident: its own string fields, then id and name of
// each of its Refs.
const (
	slotID = iota
	slotNumber
	slotStatus
	slotBriefDescription
	slotExternalNumber
	firstRefSlot
	numStringSlots = firstRefSlot + 2*numRefs
)

// Ref and Time slots of an incident.
const (
	refProcessingStatus = iota
	refPriority
	refCategory
	refSubcategory
	refOperatorGroup
	numRefs
)

const (
	timeClosed = iota
	timeCompleted
	timeCreation
	timeModification
	numTimes
)

// pendingString is a string of the incident being decoded: *dst gets
// strs[off:off+n].
type pendingString struct {
	dst    *string
	off, n int
}

// incidentBlock holds the Refs and Times an incident needs, so that they
// take one allocation instead of one each.
type incidentBlock struct {
	refs  [numRefs]Ref
	times [numTimes]Time
}

// newDecoder returns a decoder that reads at most limit bytes from r; size
// is r's length if known (else -1) and sizes the first buffer.
func newDecoder(r io.Reader, limit, size int64) decoder {
	n := int64(defaultBuffer)
	if size > 0 {
		n = min(size, maxFirstBuffer, limit)
	}
	return decoder{r: r, remain: limit, buf: make([]byte, 0, n), lastStrs: defaultStrings}
}

// fill reads more of the body into buf. It reports whether bytes were
// added; when none were, d.rerr says why. Data that comes with an error is
// kept, and the error is reported by the next fill, as json.Decoder does.
func (d *decoder) fill() bool {
	if d.rerr != nil {
		return false
	}
	if len(d.buf) == cap(d.buf) {
		nb := make([]byte, len(d.buf), 2*cap(d.buf)+minRead)
		copy(nb, d.buf)
		d.buf = nb
	}
	for range maxEmptyReads {
		if d.remain <= 0 {
			d.rerr = io.EOF
			return false
		}
		p := d.buf[len(d.buf):cap(d.buf)]
		if int64(len(p)) > d.remain {
			p = p[:d.remain]
		}
		n, err := d.r.Read(p)
		d.remain -= int64(n)
		d.buf = d.buf[:len(d.buf)+n]
		if err != nil {
			d.rerr = err
		}
		if n > 0 {
			return true
		}
		if err != nil {
			return false
		}
	}
	d.rerr = io.ErrNoProgress
	return false
}

// compact drops the consumed bytes when the buffer is full and at least
// half of it is consumed, so that the next read need not grow it. It is
// called only where no position into buf is held: between the members of an
// incident and between the elements of a list.
func (d *decoder) compact() {
	if cap(d.buf)-len(d.buf) >= minRead || d.pos < len(d.buf)/2 || d.rerr != nil {
		return
	}
	n := copy(d.buf, d.buf[d.pos:])
	d.base += int64(d.pos)
	d.buf = d.buf[:n]
	d.pos = 0
}

// save records the first wrongly typed value.
func (d *decoder) save(err error) {
	if d.saved == nil {
		d.saved = err
	}
}

// syntaxErr reports the unexpected byte c at d.pos.
func (d *decoder) syntaxErr(c byte, context string) error {
	what := fmt.Sprintf("byte 0x%02x", c)
	if c >= ' ' && c < utf8.RuneSelf {
		what = fmt.Sprintf("character %q", rune(c))
	}
	return &syntaxError{Offset: d.base + int64(d.pos), Msg: "invalid " + what + " " + context}
}

// eofErr is the error for a body that ends, or fails to read, inside a
// value.
func (d *decoder) eofErr() error {
	if d.rerr != io.EOF {
		return d.rerr
	}
	return &syntaxError{Offset: d.base + int64(len(d.buf)), Msg: "body ends inside the JSON value", Err: io.ErrUnexpectedEOF}
}

// startErr is the error for a body without a value: io.EOF if it is empty
// or blank, else the read error.
func (d *decoder) startErr() error { return d.rerr }

// endErr is the error for the end of the input right after a complete
// value: none at the end of the body, else the read error.
func (d *decoder) endErr() error {
	if d.rerr == io.EOF {
		return nil
	}
	return d.rerr
}

// finish completes a document whose top-level value started with c: a
// scalar needs the byte after it (topEnd), an object or array does not.
func (d *decoder) finish(c byte) error {
	if c != '{' && c != '[' {
		if err := d.topEnd(); err != nil {
			return err
		}
	}
	return d.saved
}

// topEnd reads the byte after a top-level scalar, which json.Decoder needs
// to see (or the end of the body) before the value counts as complete.
func (d *decoder) topEnd() error {
	if d.pos < len(d.buf) || d.fill() {
		return nil
	}
	return d.endErr()
}

// peek returns the byte at d.pos, reading more if needed. ok is false when
// the input ended (d.rerr says why).
func (d *decoder) peek() (c byte, ok bool) {
	if d.pos < len(d.buf) || d.fill() {
		return d.buf[d.pos], true
	}
	return 0, false
}

// next skips whitespace and returns the following byte without consuming
// it. ok is false when the input ended (d.rerr says why).
func (d *decoder) next() (c byte, ok bool) {
	if (d.pos >= len(d.buf) || d.buf[d.pos] <= ' ') && !d.skipSpace() {
		return 0, false
	}
	return d.buf[d.pos], true
}

// skipSpace skips whitespace, reading more as needed. It reports false when
// the input ended first.
func (d *decoder) skipSpace() bool {
	for {
		for d.pos < len(d.buf) {
			switch d.buf[d.pos] {
			case ' ', '\t', '\n', '\r':
				d.pos++
			default:
				return true
			}
		}
		if !d.fill() {
			return false
		}
	}
}

// literal consumes lit (true, false or null), which starts at d.pos.
func (d *decoder) literal(lit string) error {
	for i := 0; i < len(lit); i++ {
		c, ok := d.peek()
		if !ok {
			return d.eofErr()
		}
		if c != lit[i] {
			return d.syntaxErr(c, fmt.Sprintf("in literal %s (expecting %q)", lit, rune(lit[i])))
		}
		d.pos++
	}
	return nil
}

// digits consumes decimal digits.
func (d *decoder) digits() {
	for {
		for d.pos < len(d.buf) {
			if c := d.buf[d.pos]; c < '0' || c > '9' {
				return
			}
			d.pos++
		}
		if !d.fill() {
			return
		}
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// number consumes a number, which starts at d.pos with '-' or a digit. Like
// encoding/json it needs the byte after the number, or the end of the body.
func (d *decoder) number() error {
	c, _ := d.peek()
	ok := true
	if c == '-' {
		d.pos++
		if c, ok = d.peek(); !ok {
			return d.eofErr()
		}
	}
	switch {
	case c == '0':
		d.pos++
	case '1' <= c && c <= '9':
		d.pos++
		d.digits()
	default:
		return d.syntaxErr(c, "in numeric literal")
	}
	if c, ok = d.peek(); !ok {
		return d.endErr()
	}
	if c == '.' {
		d.pos++
		if c, ok = d.peek(); !ok {
			return d.eofErr()
		}
		if !isDigit(c) {
			return d.syntaxErr(c, "after decimal point in numeric literal")
		}
		d.digits()
		if c, ok = d.peek(); !ok {
			return d.endErr()
		}
	}
	if c == 'e' || c == 'E' {
		d.pos++
		if c, ok = d.peek(); !ok {
			return d.eofErr()
		}
		if c == '+' || c == '-' {
			d.pos++
			if c, ok = d.peek(); !ok {
				return d.eofErr()
			}
		}
		if !isDigit(c) {
			return d.syntaxErr(c, "in exponent of numeric literal")
		}
		d.digits()
		if _, ok = d.peek(); !ok {
			return d.endErr()
		}
	}
	return nil
}

// Flags of a string's raw contents.
const (
	strEscaped  = 1 << iota // has a backslash escape
	strNonASCII             // has a byte >= 0x80
)

// str consumes a string, which starts at d.pos with its opening quote, and
// returns where its raw contents (without the quotes) are in d.buf and
// whether they hold escapes or non-ASCII bytes.
func (d *decoder) str() (start, end, flags int, err error) {
	d.pos++
	start = d.pos
	i := start
	var high uint64 // OR of the bytes seen, for the non-ASCII flag
	esc := 0        // 0: not in an escape; 1: after '\'; 2-5: expecting hex digit esc-1 of \u
	for {
		buf := d.buf
		if esc == 0 {
			// Skip plain bytes eight at a time, then one at a time.
			for i+8 <= len(buf) {
				x := binary.LittleEndian.Uint64(buf[i:])
				if m := specialBytes(x); m != 0 {
					// The lowest flagged byte is a real one.
					k := bits.TrailingZeros64(m) / 8
					high |= x & (1<<(8*k) - 1)
					i += k
					break
				}
				high |= x
				i += 8
			}
			for i < len(buf) {
				c := buf[i]
				if c < ' ' || c == '"' || c == '\\' {
					break
				}
				high |= uint64(c)
				i++
			}
		}
		if i == len(buf) {
			if !d.fill() {
				return 0, 0, 0, d.eofErr()
			}
			continue
		}
		// A byte of an escape, or a '"', '\\' or control character.
		switch c := buf[i]; {
		case esc == 1:
			switch c {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				esc = 0
			case 'u':
				esc = 2
			default:
				d.pos = i
				return 0, 0, 0, d.syntaxErr(c, "in string escape code")
			}
		case esc > 1:
			if !isHex(c) {
				d.pos = i
				return 0, 0, 0, d.syntaxErr(c, `in \u hexadecimal character escape`)
			}
			if esc++; esc == 6 {
				esc = 0
			}
		case c == '"':
			d.pos = i + 1
			if high&highBits != 0 {
				flags |= strNonASCII
			}
			return start, i, flags, nil
		case c == '\\':
			flags |= strEscaped
			esc = 1
		default:
			d.pos = i
			return 0, 0, 0, d.syntaxErr(c, "in string literal")
		}
		i++
	}
}

// Words with each of their eight bytes set to 0x01 and to 0x80.
const (
	lowBits  = 0x0101010101010101
	highBits = 0x8080808080808080
)

// specialBytes flags the bytes of x (a little-endian word of string
// contents) that may end a plain run, a control character, '"' or '\\', by
// setting their top bit. The lowest flagged byte is always a real one; a
// borrow can flag a byte above it that is not.
func specialBytes(x uint64) uint64 {
	quote := x ^ ('"' * lowBits)  // zero where the byte is '"'
	slash := x ^ ('\\' * lowBits) // zero where the byte is '\\'
	return ((x-' '*lowBits)&^x | (quote-lowBits)&^quote | (slash-lowBits)&^slash) & highBits
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// hex4 parses the four hex digits of a \u escape; b was checked by str.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// unquote returns the value of a string whose raw contents raw were checked
// by str: raw itself when nothing needs decoding, else d.scratch with the
// escapes resolved and invalid UTF-8 and unpaired surrogates replaced by
// U+FFFD, as encoding/json does. The result is valid until the next call.
func (d *decoder) unquote(raw []byte, flags int) []byte {
	if flags == 0 || flags == strNonASCII && utf8.Valid(raw) {
		return raw
	}
	b := d.scratch[:0]
	for r := 0; r < len(raw); {
		c := raw[r]
		switch {
		case c == '\\':
			switch e := raw[r+1]; e {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := hex4(raw[r+2:])
				r += 6
				if utf16.IsSurrogate(rr) {
					rr1 := rune(-1)
					if len(raw)-r >= 6 && raw[r] == '\\' && raw[r+1] == 'u' {
						rr1 = hex4(raw[r+2:])
					}
					if dec := utf16.DecodeRune(rr, rr1); dec != unicode.ReplacementChar {
						b = utf8.AppendRune(b, dec)
						r += 6
						continue
					}
					rr = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // '"', '\\' or '/'
				b = append(b, e)
			}
			r += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRune(raw[r:])
			b = utf8.AppendRune(b, rr)
			r += size
		}
	}
	d.scratch = b
	return b
}

// skip consumes one value, which starts at d.pos, and checks its syntax.
// depth is the number of arrays and objects around it.
func (d *decoder) skip(depth int) error {
	var stack [16]bool
	open := stack[:0] // the containers opened here; true for an object
	for {
		c, ok := d.next()
		if !ok {
			return d.eofErr()
		}
		done := true // whether a whole value was consumed
		switch c {
		case '{', '[':
			if depth+len(open) >= maxDepth {
				return d.depthErr(c)
			}
			d.pos++
			e, ok := d.next()
			if !ok {
				return d.eofErr()
			}
			switch {
			case c == '{' && e == '}', c == '[' && e == ']':
				d.pos++
			case c == '{':
				if err := d.skipKey(); err != nil {
					return err
				}
				open, done = append(open, true), false
			default:
				open, done = append(open, false), false
			}
		case '"':
			if _, _, _, err := d.str(); err != nil {
				return err
			}
		case 't':
			if err := d.literal("true"); err != nil {
				return err
			}
		case 'f':
			if err := d.literal("false"); err != nil {
				return err
			}
		case 'n':
			if err := d.literal("null"); err != nil {
				return err
			}
		default:
			if c != '-' && !isDigit(c) {
				return d.syntaxErr(c, "looking for beginning of value")
			}
			if err := d.number(); err != nil {
				return err
			}
		}
		// Close the containers that end after this value.
		for done && len(open) > 0 {
			c, ok := d.next()
			if !ok {
				return d.eofErr()
			}
			obj := open[len(open)-1]
			switch {
			case c == ',':
				d.pos++
				if obj {
					if err := d.skipKey(); err != nil {
						return err
					}
				}
				done = false
			case obj && c == '}', !obj && c == ']':
				d.pos++
				open = open[:len(open)-1]
			case obj:
				return d.syntaxErr(c, "after object key:value pair")
			default:
				return d.syntaxErr(c, "after array element")
			}
		}
		if done {
			return nil
		}
	}
}

// skipKey consumes an object key and the ':' after it.
func (d *decoder) skipKey() error {
	c, ok := d.next()
	if !ok {
		return d.eofErr()
	}
	if c != '"' {
		return d.syntaxErr(c, "looking for beginning of object key string")
	}
	if _, _, _, err := d.str(); err != nil {
		return err
	}
	return d.colon()
}

// colon consumes the ':' after an object key.
func (d *decoder) colon() error {
	c, ok := d.next()
	if !ok {
		return d.eofErr()
	}
	if c != ':' {
		return d.syntaxErr(c, "after object key")
	}
	d.pos++
	return nil
}

// depthErr reports an array or object, opened by c at d.pos, nested deeper
// than encoding/json allows.
func (d *decoder) depthErr(c byte) error {
	return d.syntaxErr(c, fmt.Sprintf("nesting arrays and objects deeper than %d", maxDepth))
}

// openObject consumes the '{' at d.pos of an object with depth arrays and
// objects around it, and reports whether the object has members.
func (d *decoder) openObject(depth int) (bool, error) {
	if depth >= maxDepth {
		return false, d.depthErr('{')
	}
	d.pos++
	c, ok := d.next()
	if !ok {
		return false, d.eofErr()
	}
	if c == '}' {
		d.pos++
		return false, nil
	}
	return true, nil
}

// member consumes the key of an object member and the ':' after it. It
// returns the key prepared for matchKey, valid until the value is decoded,
// and the first byte of the value.
func (d *decoder) member() (key []byte, c byte, err error) {
	c, ok := d.next()
	if !ok {
		return nil, 0, d.eofErr()
	}
	if c != '"' {
		return nil, 0, d.syntaxErr(c, "looking for beginning of object key string")
	}
	start, end, flags, err := d.str()
	if err != nil {
		return nil, 0, err
	}
	key = d.buf[start:end]
	if flags != 0 {
		d.scratch = append(d.scratch[:0], d.unquote(key, flags)...)
		key = foldKey(d.scratch)
	}
	if err := d.colon(); err != nil {
		return nil, 0, err
	}
	if c, ok = d.next(); !ok {
		return nil, 0, d.eofErr()
	}
	return key, c, nil
}

// nextMember consumes the ',' or '}' after an object member and reports
// whether another member follows.
func (d *decoder) nextMember() (bool, error) {
	c, ok := d.next()
	if !ok {
		return false, d.eofErr()
	}
	switch c {
	case ',':
		d.pos++
		return true, nil
	case '}':
		d.pos++
		return false, nil
	}
	return false, d.syntaxErr(c, "after object key:value pair")
}

// mismatch records that the value at d.pos, which starts with c, does not
// fit target, and skips it.
func (d *decoder) mismatch(c byte, target string, depth int) error {
	kind := "number"
	switch c {
	case '{':
		kind = "object"
	case '[':
		kind = "array"
	case '"':
		kind = "string"
	case 't', 'f':
		kind = "boolean"
	}
	off := d.base + int64(d.pos)
	if err := d.skip(depth); err != nil {
		return err
	}
	d.save(&valueError{Offset: off, Msg: "cannot store a JSON " + kind + " in " + target})
	return nil
}

// stringField decodes the value at d.pos, which starts with c, into dst,
// through string slot slot of the incident being decoded. field and member
// name the field for errors.
func (d *decoder) stringField(c byte, dst *string, slot int, field, member string, depth int) error {
	switch c {
	case '"':
		start, end, flags, err := d.str()
		if err != nil {
			return err
		}
		v := d.unquote(d.buf[start:end], flags)
		if d.strs.Cap() == 0 {
			d.strs.Grow(d.lastStrs)
		}
		d.pending[slot] = pendingString{dst: dst, off: d.strs.Len(), n: len(v)}
		d.set |= 1 << slot
		d.strs.Write(v) // writing to a strings.Builder cannot fail
		return nil
	case 'n':
		return d.literal("null")
	}
	return d.mismatch(c, field+member+" (string)", depth)
}

// setStrings assigns the pending strings of the incident being decoded from
// one string holding them all.
func (d *decoder) setStrings() {
	if d.set == 0 {
		return
	}
	all := d.strs.String()
	for set := d.set; set != 0; set &= set - 1 {
		p := d.pending[bits.TrailingZeros16(set)]
		*p.dst = all[p.off : p.off+p.n]
	}
	d.lastStrs = min(max(len(all), defaultStrings), maxStrings)
	d.strs.Reset()
	d.set = 0
}

// boolField decodes the value at d.pos, which starts with c, into dst.
func (d *decoder) boolField(c byte, dst *bool, name string, depth int) error {
	switch c {
	case 't':
		*dst = true
		return d.literal("true")
	case 'f':
		*dst = false
		return d.literal("false")
	case 'n':
		return d.literal("null")
	}
	return d.mismatch(c, name+" (bool)", depth)
}

// blockSlot reports whether slot bit of the incident's block is still free
// and claims it. A slot is handed out once, so that a field that is set,
// nulled and set again gets a new value, as with encoding/json.
func (d *decoder) blockSlot(bit uint16) bool {
	if d.used&bit != 0 {
		return false
	}
	if d.block == nil {
		d.block = new(incidentBlock)
	}
	d.used |= bit
	return true
}

// timeField decodes the value at d.pos, which starts with c, into dst:
// null sets it to nil, anything else goes to (*Time).UnmarshalJSON. slot is
// the field's Time slot.
func (d *decoder) timeField(c byte, dst **Time, slot int, name string, depth int) error {
	if c == 'n' {
		*dst = nil
		return d.literal("null")
	}
	start := d.pos
	if err := d.skip(depth); err != nil {
		return err
	}
	if *dst == nil {
		if d.blockSlot(1 << (numRefs + slot)) {
			*dst = &d.block.times[slot]
		} else {
			*dst = new(Time)
		}
	}
	if err := (*dst).UnmarshalJSON(d.buf[start:d.pos]); err != nil {
		d.save(&valueError{Offset: d.base + int64(start), Msg: "cannot store the value in " + name, Err: err})
	}
	return nil
}

// refField decodes the value at d.pos, which starts with c, into dst. slot
// is the field's Ref slot.
func (d *decoder) refField(c byte, dst **Ref, slot int, name string, depth int) error {
	if c == 'n' {
		*dst = nil
		return d.literal("null")
	}
	if *dst == nil {
		if d.blockSlot(1 << slot) {
			*dst = &d.block.refs[slot]
		} else {
			*dst = new(Ref)
		}
	}
	if c != '{' {
		return d.mismatch(c, name+" (object)", depth)
	}
	r := *dst
	more, err := d.openObject(depth)
	for more && err == nil {
		var key []byte
		if key, c, err = d.member(); err != nil {
			return err
		}
		switch {
		case matchKey(key, "id"):
			err = d.stringField(c, &r.ID, firstRefSlot+2*slot, name, ".id", depth+1)
		case matchKey(key, "name"):
			err = d.stringField(c, &r.Name, firstRefSlot+2*slot+1, name, ".name", depth+1)
		default:
			err = d.skip(depth + 1)
		}
		if err == nil {
			more, err = d.nextMember()
		}
	}
	return err
}

// incidentDoc decodes the whole answer into inc.
func (d *decoder) incidentDoc(inc *Incident) error {
	c, ok := d.next()
	if !ok {
		return d.startErr()
	}
	if err := d.incident(c, inc, 0); err != nil {
		return err
	}
	return d.finish(c)
}

// incidentListDoc decodes the whole answer into out.
func (d *decoder) incidentListDoc(out *[]Incident) error {
	c, ok := d.next()
	if !ok {
		return d.startErr()
	}
	var err error
	switch c {
	case '[':
		err = d.incidentList(out)
	case 'n':
		*out = nil
		err = d.literal("null")
	default:
		err = d.mismatch(c, "[]Incident", 0)
	}
	if err != nil {
		return err
	}
	return d.finish(c)
}

// incidentList decodes the top-level array at d.pos into out. Like
// encoding/json it decodes into the elements out already has, and leaves an
// empty array as an empty, non-nil slice.
func (d *decoder) incidentList(out *[]Incident) error {
	d.pos++
	s := *out
	c, ok := d.next()
	if !ok {
		return d.eofErr()
	}
	i := 0
	for c != ']' {
		switch {
		case i == cap(s):
			s = append(s[:i], Incident{})
		case i >= len(s):
			s = s[:i+1]
		}
		if err := d.incident(c, &s[i], 1); err != nil {
			return err
		}
		i++
		d.compact()
		if c, ok = d.next(); !ok {
			return d.eofErr()
		}
		switch c {
		case ']':
		case ',':
			d.pos++
			if c, ok = d.next(); !ok {
				return d.eofErr()
			}
			if c == ']' {
				return d.syntaxErr(c, "looking for beginning of value")
			}
		default:
			return d.syntaxErr(c, "after array element")
		}
	}
	d.pos++
	switch {
	case i == 0:
		s = []Incident{}
	case i < len(s):
		s = s[:i]
	}
	*out = s
	return nil
}

// incident decodes the value at d.pos, which starts with c, into inc.
func (d *decoder) incident(c byte, inc *Incident, depth int) error {
	switch c {
	case '{':
	case 'n':
		return d.literal("null")
	default:
		return d.mismatch(c, "Incident", depth)
	}
	d.block, d.used = nil, 0
	more, err := d.openObject(depth)
	depth++
	for more && err == nil {
		var key []byte
		if key, c, err = d.member(); err != nil {
			return err
		}
		switch incidentField(key) {
		case "id":
			err = d.stringField(c, &inc.ID, slotID, "id", "", depth)
		case "number":
			err = d.stringField(c, &inc.Number, slotNumber, "number", "", depth)
		case "status":
			err = d.stringField(c, &inc.Status, slotStatus, "status", "", depth)
		case "briefdescription":
			err = d.stringField(c, &inc.BriefDescription, slotBriefDescription, "briefDescription", "", depth)
		case "externalnumber":
			err = d.stringField(c, &inc.ExternalNumber, slotExternalNumber, "externalNumber", "", depth)
		case "closed":
			err = d.boolField(c, &inc.Closed, "closed", depth)
		case "closeddate":
			err = d.timeField(c, &inc.ClosedDate, timeClosed, "closedDate", depth)
		case "completed":
			err = d.boolField(c, &inc.Completed, "completed", depth)
		case "completeddate":
			err = d.timeField(c, &inc.CompletedDate, timeCompleted, "completedDate", depth)
		case "creationdate":
			err = d.timeField(c, &inc.CreationDate, timeCreation, "creationDate", depth)
		case "modificationdate":
			err = d.timeField(c, &inc.ModificationDate, timeModification, "modificationDate", depth)
		case "processingstatus":
			err = d.refField(c, &inc.ProcessingStatus, refProcessingStatus, "processingStatus", depth)
		case "priority":
			err = d.refField(c, &inc.Priority, refPriority, "priority", depth)
		case "category":
			err = d.refField(c, &inc.Category, refCategory, "category", depth)
		case "subcategory":
			err = d.refField(c, &inc.Subcategory, refSubcategory, "subcategory", depth)
		case "operatorgroup":
			err = d.refField(c, &inc.OperatorGroup, refOperatorGroup, "operatorGroup", depth)
		default:
			err = d.skip(depth)
		}
		if err == nil {
			d.compact()
			more, err = d.nextMember()
		}
	}
	if err == nil {
		d.setStrings()
	}
	return err
}

// incidentField returns the lower-case JSON name of the field of Incident
// that key (prepared by member) names, or "".
func incidentField(key []byte) string {
	switch len(key) {
	case 2:
		return pick(key, "id")
	case 6:
		return pick(key, "number", "status", "closed")
	case 8:
		return pick(key, "priority", "category")
	case 9:
		return pick(key, "completed")
	case 10:
		return pick(key, "closeddate")
	case 11:
		return pick(key, "subcategory")
	case 12:
		return pick(key, "creationdate")
	case 13:
		return pick(key, "completeddate", "operatorgroup")
	case 14:
		return pick(key, "externalnumber")
	case 16:
		return pick(key, "briefdescription", "modificationdate", "processingstatus")
	}
	return ""
}

// pick returns the name that key matches, or "".
func pick(key []byte, names ...string) string {
	for _, n := range names {
		if matchKey(key, n) {
			return n
		}
	}
	return ""
}

// matchKey reports whether key (prepared by member) matches the field name
// name, given in lower case, as encoding/json matches it: ignoring case.
// name has only letters, so key[i]|0x20 equals name[i] exactly when key[i]
// is that letter in either case.
func matchKey(key []byte, name string) bool {
	if len(key) != len(name) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if key[i]|0x20 != name[i] {
			return false
		}
	}
	return true
}

// foldKey prepares an unescaped key that may hold non-ASCII runes for
// matchKey, in place. encoding/json upper-cases ASCII letters and maps any
// other rune to the smallest rune of its case folding orbit; field names are
// ASCII letters, so only runes that map to an ASCII letter can match: U+017F
// (long s) matches an s and U+212A (Kelvin sign) a k. foldKey replaces those
// runes by their ASCII letter and returns nil if any other non-ASCII rune is
// left.
func foldKey(key []byte) []byte {
	w := 0
	for i := 0; i < len(key); w++ {
		c := key[i]
		if c < utf8.RuneSelf {
			i++
		} else {
			r, size := utf8.DecodeRune(key[i:])
			if r = foldRune(r); r >= utf8.RuneSelf {
				return nil
			}
			c = byte(r)
			i += size
		}
		key[w] = c
	}
	return key[:w]
}

// foldRune returns the smallest rune of r's case folding orbit, which is how
// encoding/json folds a non-ASCII rune of a key.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}
