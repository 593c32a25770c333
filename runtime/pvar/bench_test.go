package pvar

import "testing"

func BenchmarkGet(b *testing.B) {
	slots := newSlots()
	m := newReqMsg(b)
	for _, spec := range []string{"ua", "fd", "fU", "rU", "hdr(X-Custom)", "rU{s.substr,0,4}", "fu{uri.user}", "ru"} {
		r := compileT(b, slots, spec)
		b.Run(spec, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.Get(m)
			}
		})
	}
}
