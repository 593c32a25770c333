package dialog

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/stats"
)

// Statistics under OpenSIPS's dialog names.
var (
	_ = stats.NewFunc(Name, "active_dialogs", func() int64 { return tbl.count.Load() })
	_ = stats.NewFunc(Name, "early_dialogs", func() int64 { return tbl.early.Load() })
	_ = stats.NewFunc(Name, "processed_dialogs", func() int64 { return int64(tbl.processed.Load()) })
	_ = stats.NewFunc(Name, "expired_dialogs", func() int64 { return int64(tbl.expired.Load()) })
	_ = stats.NewFunc(Name, "failed_dialogs", func() int64 { return int64(tbl.failed.Load()) })
)

// Count is the number of live dialogs.
func Count() int64 { return tbl.count.Load() }

func miCommands() []modules.MICommand {
	return []modules.MICommand{
		{Name: "dlg_list", Help: "Params: [callid [from_tag]] | [index counter] ; list the dialogs", Run: miList},
		{Name: "dlg_list_ctx", Help: "Params: as dlg_list ; list the dialogs with their values and profiles", Run: miList},
		{Name: "dlg_end_dlg", Help: "Params: dialog_id [extra_hdrs] ; end a dialog (BYE to both sides) by numeric id or Call-ID", Run: miEnd},
		{Name: "profile_get_size", Help: "Params: profile [value] ; the number of dialogs in a profile", Run: miProfileSize},
		{Name: "profile_list_dlgs", Help: "Params: profile [value] ; list the dialogs of a profile", Run: miProfileList},
		{Name: "profile_get_values", Help: "Params: profile ; the values of a profile with their counts", Run: miProfileValues},
		{Name: "list_all_profiles", Help: "Params: none ; the defined profiles (1: with values)", Run: miAllProfiles},
	}
}

func miStr(params map[string]any, name string) (string, bool) {
	raw, ok := params[name]
	if !ok || raw == nil {
		return "", false
	}
	switch v := raw.(type) {
	case string:
		return v, true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	}
	return fmt.Sprint(raw), true
}

// describe is one dialog as dlg_list shows it.
func describe(d *Dialog) map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	vals := map[string]any{}
	for _, e := range d.vals {
		vals[e.name] = e.val
	}
	profs := []map[string]any{}
	for _, l := range d.profiles {
		profs = append(profs, map[string]any{"name": l.p.Name, "value": l.val})
	}
	return map[string]any{
		"ID":         strconv.FormatUint(d.ID(), 10),
		"did":        d.DID(),
		"state":      int(d.state),
		"user_flags": int64(d.flags),
		"timestart":  d.start,
		"datestart":  d.created,
		"timeout":    d.expires,
		"callid":     d.callID,
		"from_uri":   d.fromURI,
		"to_uri":     d.toURI,
		"caller": map[string]any{
			"tag": d.fromTag, "contact": d.callerContact, "cseq": d.callerCSeq,
			"route_set": d.callerRoute, "bind_addr": d.callerSock,
		},
		"callee": map[string]any{
			"tag": d.toTag, "contact": d.calleeContact, "cseq": d.calleeCSeq,
			"route_set": d.calleeRoute, "bind_addr": d.calleeSock,
		},
		"values":   vals,
		"profiles": profs,
	}
}

func sortedDialogs(filter func(d *Dialog) bool) []*Dialog {
	var list []*Dialog
	tbl.each(func(d *Dialog) bool {
		if filter == nil || filter(d) {
			list = append(list, d)
		}
		return true
	})
	sort.Slice(list, func(i, j int) bool { return list[i].ID() < list[j].ID() })
	return list
}

func miList(params map[string]any) (any, error) {
	callid, hasCID := miStr(params, "callid")
	ftag, hasTag := miStr(params, "from_tag")
	idxS, hasIdx := miStr(params, "index")
	cntS, hasCnt := miStr(params, "counter")
	var list []*Dialog
	if hasCID {
		list = sortedDialogs(func(d *Dialog) bool {
			return d.callID == callid && (!hasTag || d.fromTag == ftag)
		})
		if len(list) == 0 {
			return nil, mi.Errorf(404, "Nothing found")
		}
	} else {
		list = sortedDialogs(nil)
		if hasIdx || hasCnt {
			idx, err1 := strconv.Atoi(idxS)
			cnt, err2 := strconv.Atoi(cntS)
			if err1 != nil || err2 != nil || idx < 0 || cnt <= 0 {
				return nil, mi.Errorf(400, "index and counter must be non-negative integers (counter > 0)")
			}
			if idx > len(list) {
				idx = len(list)
			}
			end := idx + cnt
			if end > len(list) {
				end = len(list)
			}
			list = list[idx:end]
		}
	}
	out := make([]map[string]any, 0, len(list))
	for _, d := range list {
		out = append(out, describe(d))
	}
	return map[string]any{"Dialogs": out}, nil
}

// EndDialog ends a dialog from outside the SIP flow (MI): BYE to both
// sides of a confirmed dialog. Early dialogs are refused.
func EndDialog(id, extra string) error {
	d := tbl.find(id)
	if d == nil {
		return mi.Errorf(404, "Requested Dialog not found")
	}
	d.mu.Lock()
	st := d.state
	d.mu.Unlock()
	if st < StateConfirmedNA {
		return mi.Errorf(403, "dialog %s is not confirmed yet (ending early dialogs is not supported)", id)
	}
	if extra == "" {
		extra = liveConfig().extraHdrs
	}
	errs := sendByes(d, extra)
	end(d, ReasonMI)
	if len(errs) > 0 {
		return mi.Errorf(500, "dialog ended, but sending BYE failed: %v", errs[0])
	}
	return nil
}

func miEnd(params map[string]any) (any, error) {
	id, ok := miStr(params, "dialog_id")
	if !ok {
		return nil, mi.Errorf(400, "missing parameter dialog_id")
	}
	extra, _ := miStr(params, "extra_hdrs")
	if err := EndDialog(id, extra); err != nil {
		return nil, err
	}
	return "OK", nil
}

func miProfile(params map[string]any) (*Profile, string, bool, error) {
	name, ok := miStr(params, "profile")
	if !ok {
		return nil, "", false, mi.Errorf(400, "missing parameter profile")
	}
	p := LookupProfile(name)
	if p == nil {
		return nil, "", false, mi.Errorf(404, "Profile not found")
	}
	val, has := miStr(params, "value")
	return p, val, has, nil
}

func miProfileSize(params map[string]any) (any, error) {
	p, val, has, err := miProfile(params)
	if err != nil {
		return nil, err
	}
	res := map[string]any{"name": p.Name, "count": p.Size(val, has)}
	if has && p.WithValue {
		res["value"] = val
	}
	return map[string]any{"Profile": res}, nil
}

func miProfileList(params map[string]any) (any, error) {
	p, val, has, err := miProfile(params)
	if err != nil {
		return nil, err
	}
	list := sortedDialogs(func(d *Dialog) bool { return d.InProfile(p, val, has) })
	out := make([]map[string]any, 0, len(list))
	for _, d := range list {
		out = append(out, describe(d))
	}
	return map[string]any{"Dialogs": out}, nil
}

func miProfileValues(params map[string]any) (any, error) {
	p, _, _, err := miProfile(params)
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	if p.WithValue {
		vals := p.Values()
		keys := make([]string, 0, len(vals))
		for k := range vals {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, map[string]any{"value": k, "count": vals[k]})
		}
	} else {
		out = append(out, map[string]any{"value": "", "count": p.Size("", false)})
	}
	return map[string]any{"Values": out}, nil
}

func miAllProfiles(map[string]any) (any, error) {
	var out []map[string]any
	for _, n := range profileNames() {
		p := LookupProfile(n)
		hv := 0
		if p.WithValue {
			hv = 1
		}
		out = append(out, map[string]any{"name": n, "has value": hv})
	}
	return map[string]any{"Profiles": out}, nil
}
