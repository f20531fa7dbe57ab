package topdesk

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// maxNearest is the number of suggestions a NameError carries at most.
const maxNearest = 3

// NameError reports a name that does not resolve to exactly one TOPdesk
// entry. Resolve, ResolveAll and Apply return it (ResolveAll and Apply
// joined with other errors); IsRejected is true for it.
type NameError struct {
	// Field is the field whose name failed.
	Field Field
	// Value is the name (or e-mail address) that was looked up.
	Value string
	// Category is the category a subcategory was looked up in, if any.
	Category string
	// Nearest are up to three existing names close to Value (by edit
	// distance or a shared prefix, case-insensitively), best first.
	Nearest []string
	// Ambiguous is true when several entries match: a subcategory name that
	// exists under several categories while no category was given, or
	// several entries with the same name.
	Ambiguous bool
	// Candidates are what the ambiguous name could mean: category names for
	// a subcategory, else the matching entries' names and ids.
	Candidates []string
}

// Error says what was not found or is ambiguous, with suggestions.
func (e *NameError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q", e.Field, e.Value)
	if e.Ambiguous {
		if e.Field == FieldSubcategory && e.Category == "" {
			b.WriteString(" is ambiguous in TOPdesk: it exists in categories ")
			writeQuoted(&b, e.Candidates)
			b.WriteString("; name the category as well")
			return b.String()
		}
		if e.Category != "" {
			fmt.Fprintf(&b, " in category %q", e.Category)
		}
		b.WriteString(" is ambiguous in TOPdesk (candidates: ")
		writeQuoted(&b, e.Candidates)
		b.WriteByte(')')
		return b.String()
	}
	b.WriteString(" not found")
	if e.Category != "" {
		fmt.Fprintf(&b, " in category %q", e.Category)
	}
	b.WriteString(" in TOPdesk")
	if len(e.Nearest) > 0 {
		b.WriteString(" (nearest: ")
		writeQuoted(&b, e.Nearest)
		b.WriteByte(')')
	}
	return b.String()
}

func writeQuoted(b *strings.Builder, list []string) {
	for i, s := range list {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(b, "%q", s)
	}
}

// Resolver turns the names a mapping uses into TOPdesk ids. Each searchlist
// is fetched once, and each resolved name is cached, so that after a warm-up
// resolving makes no request. Failures are not cached: a name added in
// TOPdesk later resolves on the next call. A Resolver is safe for
// concurrent use; concurrent callers of the same lookup share one request.
type Resolver struct {
	c     *Client
	lists flightCache[Field, []Option]
	subs  flightCache[struct{}, []Subcategory]
	ids   flightCache[resolveKey, string]
}

// resolveKey identifies one resolution. catID is set for a subcategory whose
// category is known only by id (in Apply).
type resolveKey struct {
	ref   NameRef
	catID string
}

// NewResolver returns a Resolver that looks names up with c.
func NewResolver(c *Client) *Resolver {
	return &Resolver{c: c}
}

// Reset forgets every cached list and id, e.g. after the TOPdesk
// configuration changed.
func (r *Resolver) Reset() {
	r.lists.reset()
	r.subs.reset()
	r.ids.reset()
}

// Resolve returns the id of the entry ref names. Names are compared exactly
// first, then case-insensitively. A subcategory is looked up within
// ref.Category when that is set. For FieldCallerEmail it returns the id of the
// person with that e-mail address. An unknown or ambiguous name gives a
// *NameError; a failed lookup gives the client's error, wrapped.
func (r *Resolver) Resolve(ctx context.Context, ref NameRef) (string, error) {
	return r.resolve(ctx, resolveKey{ref: ref})
}

func (r *Resolver) resolve(ctx context.Context, k resolveKey) (string, error) {
	if k.ref.Name == "" {
		return "", &ValidationError{Field: string(k.ref.Field), Reason: "name is empty"}
	}
	id, err := r.ids.get(ctx, k, func(ctx context.Context) (string, error) { return r.lookup(ctx, k) })
	if err != nil {
		var ne *NameError
		var ve *ValidationError
		if errors.As(err, &ne) || errors.As(err, &ve) {
			return "", err
		}
		return "", fmt.Errorf("resolve %s %q: %w", k.ref.Field, k.ref.Name, err)
	}
	return id, nil
}

// ResolveAll resolves every ref (warming the cache) and returns all failures
// joined with errors.Join; each names its field and value.
func (r *Resolver) ResolveAll(ctx context.Context, refs []NameRef) error {
	var errs []error
	for _, ref := range refs {
		if _, err := r.Resolve(ctx, ref); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Apply replaces every name-only Ref in the request by one carrying the
// resolved id (the name is kept for readability; only the id is sent). A
// subcategory is resolved within the request's category when the request
// names one. callerLookup.email is checked to belong to exactly one person
// but is left as an e-mail address. Refs that already carry an id are left
// alone. On error the request is unchanged and all failures are returned,
// joined.
func (r *Resolver) Apply(ctx context.Context, in *IncidentRequest) error {
	if in == nil {
		return &ValidationError{Field: "request", Reason: "is nil"}
	}
	type change struct {
		p  **Ref
		id string
	}
	var changes []change
	var errs []error
	resolve := func(p **Ref, k resolveKey) {
		ref := *p
		if ref == nil || ref.ID != "" || ref.Name == "" {
			return
		}
		k.ref.Name = ref.Name
		id, err := r.resolve(ctx, k)
		if err != nil {
			errs = append(errs, err)
			return
		}
		changes = append(changes, change{p, id})
	}
	resolve(&in.ProcessingStatus, resolveKey{ref: NameRef{Field: FieldProcessingStatus}})
	resolve(&in.Priority, resolveKey{ref: NameRef{Field: FieldPriority}})
	resolve(&in.Impact, resolveKey{ref: NameRef{Field: FieldImpact}})
	resolve(&in.Urgency, resolveKey{ref: NameRef{Field: FieldUrgency}})
	resolve(&in.Category, resolveKey{ref: NameRef{Field: FieldCategory}})
	sub := resolveKey{ref: NameRef{Field: FieldSubcategory}}
	if cat := in.Category; cat != nil {
		if cat.ID != "" {
			sub.catID = cat.ID
		} else {
			sub.ref.Category = cat.Name
		}
	}
	resolve(&in.Subcategory, sub)
	resolve(&in.CallType, resolveKey{ref: NameRef{Field: FieldCallType}})
	resolve(&in.EntryType, resolveKey{ref: NameRef{Field: FieldEntryType}})
	resolve(&in.ClosureCode, resolveKey{ref: NameRef{Field: FieldClosureCode}})
	resolve(&in.Duration, resolveKey{ref: NameRef{Field: FieldDuration}})
	resolve(&in.OperatorGroup, resolveKey{ref: NameRef{Field: FieldOperatorGroup}})
	resolve(&in.Operator, resolveKey{ref: NameRef{Field: FieldOperator}})
	if cl := in.CallerLookup; cl != nil && cl.ID == "" && cl.Email != "" {
		if _, err := r.Resolve(ctx, NameRef{Field: FieldCallerEmail, Name: cl.Email}); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, ch := range changes {
		// A new Ref, so that a Ref shared with the caller's templates is
		// not modified.
		*ch.p = &Ref{ID: ch.id, Name: (*ch.p).Name}
	}
	return nil
}

// lookup resolves one key without the id cache.
func (r *Resolver) lookup(ctx context.Context, k resolveKey) (string, error) {
	ref := k.ref
	switch ref.Field {
	case FieldSubcategory:
		return r.lookupSubcategory(ctx, k)
	case FieldOperatorGroup:
		found, err := r.c.OperatorGroups(ctx, ref.Name)
		if err != nil {
			return "", err
		}
		return r.matchOrSuggest(ctx, ref, found, r.c.OperatorGroups)
	case FieldOperator:
		found, err := r.c.Operators(ctx, ref.Name)
		if err != nil {
			return "", err
		}
		return r.matchOrSuggest(ctx, ref, found, r.c.Operators)
	case FieldCallerEmail:
		found, err := r.c.PersonsByEmail(ctx, ref.Name)
		if err != nil {
			return "", err
		}
		switch len(found) {
		case 0:
			return "", &NameError{Field: ref.Field, Value: ref.Name}
		case 1:
			return found[0].ID, nil
		}
		return "", &NameError{Field: ref.Field, Value: ref.Name, Ambiguous: true, Candidates: describe(found)}
	}
	if !IsSearchlist(ref.Field) {
		return "", &ValidationError{Field: string(ref.Field), Reason: "is not a field whose names TOPdesk can look up"}
	}
	list, err := r.lists.get(ctx, ref.Field, func(ctx context.Context) ([]Option, error) {
		return r.c.Searchlist(ctx, ref.Field)
	})
	if err != nil {
		return "", err
	}
	return match(ref, list)
}

// matchOrSuggest matches name among found; when nothing was found it lists
// every entry (once, cached) to suggest the nearest names.
func (r *Resolver) matchOrSuggest(ctx context.Context, ref NameRef, found []Option, list func(context.Context, string) ([]Option, error)) (string, error) {
	if len(found) > 0 {
		return match(ref, found)
	}
	all, err := r.lists.get(ctx, ref.Field, func(ctx context.Context) ([]Option, error) { return list(ctx, "") })
	if err != nil {
		// The name is unknown either way; suggestions are a bonus.
		return "", &NameError{Field: ref.Field, Value: ref.Name}
	}
	return match(ref, all)
}

// match finds the one entry named ref.Name: exact matches first, then
// case-insensitive ones.
func match(ref NameRef, opts []Option) (string, error) {
	hits := named(opts, func(o Option) string { return o.Name }, ref.Name)
	switch len(hits) {
	case 1:
		return hits[0].ID, nil
	case 0:
		names := make([]string, len(opts))
		for i, o := range opts {
			names[i] = o.Name
		}
		return "", &NameError{Field: ref.Field, Value: ref.Name, Nearest: nearest(ref.Name, names)}
	}
	return "", &NameError{Field: ref.Field, Value: ref.Name, Ambiguous: true, Candidates: describe(hits)}
}

// named returns the items whose name is want: the exact matches, or when
// there are none the case-insensitive ones.
func named[T any](items []T, name func(T) string, want string) []T {
	var hits []T
	for _, it := range items {
		if name(it) == want {
			hits = append(hits, it)
		}
	}
	if len(hits) == 0 {
		for _, it := range items {
			if strings.EqualFold(name(it), want) {
				hits = append(hits, it)
			}
		}
	}
	return hits
}

// describe lists entries as "name (id)" for an ambiguity report.
func describe(opts []Option) []string {
	out := make([]string, len(opts))
	for i, o := range opts {
		out[i] = o.Name + " (" + o.ID + ")"
	}
	return out
}

// lookupSubcategory resolves a subcategory, within its category when one is
// given by name (ref.Category) or id (k.catID).
func (r *Resolver) lookupSubcategory(ctx context.Context, k resolveKey) (string, error) {
	ref := k.ref
	subs, err := r.subs.get(ctx, struct{}{}, r.c.Subcategories)
	if err != nil {
		return "", err
	}
	inScope := subs
	switch {
	case k.catID != "":
		inScope = slices.DeleteFunc(slices.Clone(subs), func(s Subcategory) bool { return s.Category.ID != k.catID })
	case ref.Category != "":
		inScope = named(subs, func(s Subcategory) string { return s.Category.Name }, ref.Category)
	}
	hits := named(inScope, func(s Subcategory) string { return s.Name }, ref.Name)
	catLabel := ref.Category
	if catLabel == "" && k.catID != "" {
		catLabel = "id " + k.catID
	}
	switch len(hits) {
	case 1:
		return hits[0].ID, nil
	case 0:
		var names []string
		for _, s := range inScope {
			if !slices.Contains(names, s.Name) {
				names = append(names, s.Name)
			}
		}
		return "", &NameError{Field: ref.Field, Value: ref.Name, Category: catLabel, Nearest: nearest(ref.Name, names)}
	}
	var cats []string
	for _, s := range hits {
		if !slices.Contains(cats, s.Category.Name) {
			cats = append(cats, s.Category.Name)
		}
	}
	if catLabel == "" && len(cats) > 1 {
		return "", &NameError{Field: ref.Field, Value: ref.Name, Ambiguous: true, Candidates: cats}
	}
	opts := make([]Option, len(hits))
	for i, s := range hits {
		opts[i] = Option{ID: s.ID, Name: s.Category.Name + "/" + s.Name}
	}
	return "", &NameError{Field: ref.Field, Value: ref.Name, Category: catLabel, Ambiguous: true, Candidates: describe(opts)}
}

// nearest returns up to maxNearest names close to v, case-insensitively:
// within an edit distance of a third of v's length (at least 2), or sharing
// a prefix of at least two characters (or one being a prefix of the other).
// Closer names come first.
func nearest(v string, names []string) []string {
	lv := strings.ToLower(v)
	type scored struct {
		name string
		dist int
	}
	var cands []scored
	limit := max(2, utf8.RuneCountInString(v)/3)
	for _, n := range names {
		if n == "" {
			continue
		}
		ln := strings.ToLower(n)
		d := editDistance(lv, ln)
		p := commonPrefix(lv, ln)
		if d <= limit || p >= 2 || p > 0 && (p == utf8.RuneCountInString(lv) || p == utf8.RuneCountInString(ln)) {
			if !slices.ContainsFunc(cands, func(s scored) bool { return s.name == n }) {
				cands = append(cands, scored{n, d})
			}
		}
	}
	slices.SortStableFunc(cands, func(a, b scored) int {
		if a.dist != b.dist {
			return a.dist - b.dist
		}
		return strings.Compare(a.name, b.name)
	})
	if len(cands) > maxNearest {
		cands = cands[:maxNearest]
	}
	if len(cands) == 0 {
		return nil
	}
	out := make([]string, len(cands))
	for i, c := range cands {
		out[i] = c.name
	}
	return out
}

// commonPrefix returns the number of leading runes a and b share.
func commonPrefix(a, b string) int {
	n := 0
	for a != "" && b != "" {
		ra, sa := utf8.DecodeRuneInString(a)
		rb, sb := utf8.DecodeRuneInString(b)
		if ra != rb {
			break
		}
		n++
		a, b = a[sa:], b[sb:]
	}
	return n
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// flightCache caches the successful result of a fetch per key and lets
// concurrent callers of one key share a single fetch. Failed fetches are not
// cached. The zero value is ready to use.
type flightCache[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]*flight[V]
}

type flight[V any] struct {
	done chan struct{}
	val  V
	err  error
}

func (c *flightCache[K, V]) reset() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}

// get returns the cached value for k, or runs fetch once for all callers
// waiting on k. A caller whose ctx ends while waiting gets the ctx error; a
// waiter whose fetching caller gave up (its ctx ended) fetches itself.
func (c *flightCache[K, V]) get(ctx context.Context, k K, fetch func(context.Context) (V, error)) (V, error) {
	for {
		c.mu.Lock()
		f, ok := c.m[k]
		if !ok {
			f = &flight[V]{done: make(chan struct{})}
			if c.m == nil {
				c.m = make(map[K]*flight[V])
			}
			c.m[k] = f
			c.mu.Unlock()
			f.val, f.err = fetch(ctx)
			if f.err != nil {
				c.mu.Lock()
				if c.m[k] == f {
					delete(c.m, k)
				}
				c.mu.Unlock()
			}
			close(f.done)
			return f.val, f.err
		}
		c.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			var zero V
			return zero, ctxError(ctx)
		}
		if f.err == nil {
			return f.val, nil
		}
		if ctx.Err() == nil && errors.Is(f.err, context.Canceled) {
			continue // the fetcher was cancelled, we were not: try ourselves
		}
		return f.val, f.err
	}
}
