package usrloc

import (
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/sipedge/sipedge/modules"
)

func miCommands() []modules.MICommand {
	cmds := []modules.MICommand{
		{Name: "ul_dump", Help: "dump every table's registrations (brief: AORs and contact URIs only)", Run: miDump},
		{Name: "ul_show_contact", Help: "show the contacts of an AOR: table_name, aor", Run: miShowContact},
		{Name: "ul_rm", Help: "delete an AOR and its contacts: table_name, aor", Run: miRm},
		{Name: "ul_rm_contact", Help: "delete one contact of an AOR: table_name, aor, contact", Run: miRmContact},
		{Name: "ul_flush", Help: "write pending changes to the database now (db_mode 2)", Run: func(map[string]any) (any, error) { return "OK", Flush() }},
	}
	// OpenSIPS 3.x names the same commands usrloc:dump, usrloc:show_contact ...
	for _, c := range cmds[:5] {
		alias := c
		alias.Name = "usrloc:" + c.Name[3:]
		cmds = append(cmds, alias)
	}
	return cmds
}

func strParam(params map[string]any, name string) (string, error) {
	v, ok := params[name]
	if !ok {
		return "", fmt.Errorf("missing parameter %s", name)
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case fmt.Stringer:
		return v.String(), nil
	}
	return fmt.Sprint(v), nil
}

func contactInfo(ct *Contact, now int64) map[string]any {
	exp := any("permanent")
	if ct.Expires != 0 {
		exp = ct.Expires - now
	}
	q := ""
	if ct.Q >= 0 {
		q = strconv.FormatFloat(float64(ct.Q)/1000, 'f', -1, 64)
	}
	state := "CS_SYNC"
	switch {
	case ct.memOnly && cur.Load().mode != NoDB:
		state = "CS_MEM_ONLY"
	case ct.state == stateNew:
		state = "CS_NEW"
	case ct.state == stateDirty:
		state = "CS_DIRTY"
	}
	id := ct.ID
	if id == 0 {
		id = ct.key // not in the database (yet): the in-memory id
	}
	out := map[string]any{
		"Contact": ct.URI, "ContactID": strconv.FormatInt(id, 10), "Expires": exp, "Q": q,
		"Callid": ct.CallID, "Cseq": ct.CSeq, "User-agent": ct.UserAgent, "State": state,
		"Flags": ct.Flags, "Cflags": ct.CFlags, "Socket": ct.Socket, "Methods": ct.Methods,
		"Last-Modified": ct.LastModified,
	}
	if ct.Received != "" {
		out["Received"] = ct.Received
	}
	if ct.Path != "" {
		out["Path"] = ct.Path
	}
	if ct.Instance != "" {
		out["SIP_instance"] = ct.Instance
	}
	if ct.Attr != "" {
		out["Attr"] = ct.Attr
	}
	return out
}

func miDump(params map[string]any) (any, error) {
	brief := false
	if v, ok := params["brief"]; ok {
		s, _ := v.(string)
		brief = s == "brief" || s == "1" || v == true
	}
	now := clock()
	var doms []any
	for _, d := range Domains() {
		all, err := d.All()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.Name, err)
		}
		aors := make([]string, 0, len(all))
		for aor := range all {
			aors = append(aors, aor)
		}
		sort.Strings(aors)
		list := make([]any, 0, len(aors))
		for _, aor := range aors {
			var cs []any
			for i := range all[aor] {
				ct := &all[aor][i]
				if brief {
					cs = append(cs, map[string]any{"Contact": ct.URI, "Expires": contactInfo(ct, now)["Expires"]})
				} else {
					cs = append(cs, contactInfo(ct, now))
				}
			}
			list = append(list, map[string]any{"AOR": aor, "Contacts": cs})
		}
		doms = append(doms, map[string]any{"name": d.Name, "AORs": list})
	}
	return map[string]any{"Domains": doms}, nil
}

func lookupDomain(params map[string]any) (*Domain, string, error) {
	table, err := strParam(params, "table_name")
	if err != nil {
		return nil, "", err
	}
	aor, err := strParam(params, "aor")
	if err != nil {
		return nil, "", err
	}
	domainsMu.Lock()
	d := domains[table]
	domainsMu.Unlock()
	if d == nil {
		return nil, "", fmt.Errorf("table %q not found", table)
	}
	return d, aor, nil
}

var errNotFound = errors.New("AOR not found")

func miShowContact(params map[string]any) (any, error) {
	d, aor, err := lookupDomain(params)
	if err != nil {
		return nil, err
	}
	cs, err := d.Lookup(aor)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, errNotFound
	}
	now := clock()
	list := make([]any, len(cs))
	for i := range cs {
		list[i] = contactInfo(&cs[i], now)
	}
	return map[string]any{"AOR": aor, "Contacts": list}, nil
}

func miRm(params map[string]any) (any, error) {
	d, aor, err := lookupDomain(params)
	if err != nil {
		return nil, err
	}
	n, err := d.RemoveAOR(aor)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errNotFound
	}
	return "OK", nil
}

func miRmContact(params map[string]any) (any, error) {
	d, aor, err := lookupDomain(params)
	if err != nil {
		return nil, err
	}
	contact, err := strParam(params, "contact")
	if err != nil {
		return nil, err
	}
	found := false
	_, err = d.Update(aor, false, func(cs []Contact) ([]Contact, error) {
		out := cs[:0]
		for _, c := range cs {
			if c.URI == contact {
				found = true
				continue
			}
			out = append(out, c)
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, errors.New("contact not found")
	}
	return "OK", nil
}
