package topdesktest

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"unicode/utf16"
)

func TestPlainText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"no tags", "no tags"},
		{"a<br>b<BR/>c<Br \t\n\f\r/>d", "a\nb\nc\nd"},
		{"<b>bold</b> &amp; &lt;x&gt; &#43;", "bold & <x> +"},
		{"x > y < z", "x > y < z"},
		{"<a href=\"x\">link</a>", "link"},
		{"Free space <b>below</b> 3%.<br>Key: db-7/disk-full", "Free space below 3%.\nKey: db-7/disk-full"},
		{"<p>one\n\ntwo</p>", "one\n\ntwo"},
		{"a<", "a<"},
	}
	for _, tc := range tests {
		if got := plainText(tc.in); got != tc.want {
			t.Errorf("plainText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestUTF16Len(t *testing.T) {
	for _, s := range []string{"", "plain", "é€", "😀", strings.Repeat("😀", 80), "\U0010ffff", "\xf4\x90\x80\x80", "a\xffb"} {
		if got, want := utf16Len(s), len(utf16.Encode([]rune(s))); got != want {
			t.Errorf("utf16Len(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestFormatUUID(t *testing.T) {
	for range 100 {
		var b [16]byte
		// crypto/rand.Read never returns an error.
		_, _ = rand.Read(b[:])
		if got, want := formatUUID(b[:]), fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]); got != want {
			t.Errorf("formatUUID(%x) = %s, want %s", b, got, want)
		}
	}
}
