package bytecode

import (
	"regexp"
	"testing"
)

// TestMatcherAgreesWithRegexp checks the substring fast path gives exactly
// regexp's answer, for simple patterns and for ones that must fall back.
func TestMatcherAgreesWithRegexp(t *testing.T) {
	patterns := []string{
		"friendly|sipcli|VaxSIPUser|VoIP.*v1", "^\\+?[0-9]+$", "a.*b.*c", "x\\.y", "",
		"abc|", "^sip:", "Foo", "(a|b)c", "a\\d",
	}
	subjects := []string{
		"friendly-scanner", "FRIENDLY", "sipcli/v1.8", "VoIP SIP v11.2", "voip v1", "VoIP v2",
		"Linphone/5.2", "", "+4412345", "12a", "axxbyyc", "acb", "x.y", "xzy", "ab\nc",
		"Straße v1", "foo", "FOO", "ac", "a5",
	}
	for _, p := range patterns {
		for _, fold := range []bool{false, true} {
			m, err := NewMatcher(p, fold)
			if err != nil {
				t.Fatal(err)
			}
			src := p
			if fold {
				src = "(?i)" + p
			}
			re := regexp.MustCompile(src)
			for _, s := range subjects {
				if got, want := m.MatchString(s), re.MatchString(s); got != want {
					t.Errorf("pattern %q fold=%v subject %q: got %v, want %v", p, fold, s, got, want)
				}
			}
		}
	}
}

func BenchmarkMatcher(b *testing.B) {
	m, _ := NewMatcher("friendly|sipcli|VaxSIPUser|VoIP.*v1", true)
	re := m.Re
	ua := "Linphone/5.2.0 (belle-sip/5.2.0)"
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			m.MatchString(ua)
		}
	})
	b.Run("regexp", func(b *testing.B) {
		for b.Loop() {
			re.MatchString(ua)
		}
	})
}
