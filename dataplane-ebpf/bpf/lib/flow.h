/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Flow events: one per new connection, per denied attempt (rate-limited per
 * tuple), per close and per periodic counter export. Never one per packet.
 * A reservation that fails because the ring is full is counted, never silent,
 * and so is an event over its source's budget.
 */
#ifndef BH_LIB_FLOW_H
#define BH_LIB_FLOW_H

#include "maps.h"
#include "stats.h"

struct bh_event_ctx {
	const struct bh_ct_key *tuple; /* original direction of the connection */
	const __u8 *charge; /* whose event budget pays; NULL: the tuple's source */
	const struct bh_ct_value *ct;  /* may be NULL: denied, never tracked */
	__u32 ifindex;
	__u32 local_identity;
	__u32 remote_identity;
	__u32 rule_id;
	__u16 reason;
	__u8 type;
	__u8 verdict;
	__u8 family;
	__u8 tcp_flags;
	__u8 is_reply;
};

/*
 * A token bucket's credit, in unit-nanoseconds (BH_NS_PER_SEC buys one
 * unit), after refilling at rate units a second up to cap.
 */
static __always_inline __u64 bh_bucket_refill(__u64 credit, __u64 last_ns, __u64 now, __u64 rate, __u64 cap)
{
	__u64 elapsed = now > last_ns ? now - last_ns : 0;
	/* Bounded before multiplying: a long-quiet source simply has a full bucket. */
	if (elapsed >= cap / rate)
		return cap;
	if (credit + elapsed * rate > cap)
		return cap;
	return credit + elapsed * rate;
}

/*
 * Fairness between sources: every event is charged to the address that
 * initiated its connection (the tuple's original source), whichever end saw
 * it, or to the pod that sent a packet dropped before policy (spoofed,
 * malformed, quarantined: see bh_drop_early), from a token bucket refilled
 * at events_per_source_s up to events_burst. A flooding source loses its own
 * events first and nobody else's: each suppressed event is counted on the
 * node, and the source's next event carries how many it lost. Returns
 * whether to emit; *carried is that count, and *budget the bucket it came
 * from (NULL for a new source), to give the count back if the ring is full.
 * The carried count is a plain read-and-reset, so two CPUs racing on one
 * source can under-attribute a few; BH_STAT_EVENTS_RATELIMITED is exact.
 */
static __always_inline int bh_event_budget_take(const struct bh_config *cfg, const __u8 *source, __u64 now,
						__u32 *carried, struct bh_event_budget **budget)
{
	__u64 rate = cfg && cfg->events_per_source_s ? cfg->events_per_source_s : BH_EVENTS_PER_SOURCE;
	__u64 burst = cfg && cfg->events_burst ? cfg->events_burst : BH_EVENTS_BURST;
	__u64 cap = burst * BH_NS_PER_SEC;
	struct bh_event_source key;
	__builtin_memcpy(key.addr, source, 16);
	*carried = 0;
	struct bh_event_budget *b = bpf_map_lookup_elem(&bh_event_budget, &key);
	*budget = b;
	if (!b) {
		struct bh_event_budget fresh = { .last_ns = now, .credit = cap - BH_NS_PER_SEC };
		bpf_map_update_elem(&bh_event_budget, &key, &fresh, BPF_NOEXIST);
		return 1;
	}
	__u64 credit = bh_bucket_refill(b->credit, b->last_ns, now, rate, cap);
	b->last_ns = now;
	if (credit < BH_NS_PER_SEC) {
		b->credit = credit;
		__sync_fetch_and_add(&b->suppressed, 1);
		bh_stat_inc(BH_STAT_EVENTS_RATELIMITED);
		return 0;
	}
	b->credit = credit - BH_NS_PER_SEC;
	__u64 owed = b->suppressed;
	if (owed) {
		b->suppressed = 0;
		*carried = owed > 0xffffffffULL ? 0xffffffffU : (__u32)owed;
	}
	return 1;
}

/* Fills an event's connection fields from c (all but suppressed). */
static __always_inline void bh_fill_event(struct bh_flow_event *ev, const struct bh_event_ctx *c, __u64 now)
{
	const struct bh_ct_key *t = c->tuple;
	ev->ts_ns = now;
	__builtin_memcpy(ev->saddr, t->saddr, 16);
	__builtin_memcpy(ev->daddr, t->daddr, 16);
	ev->sport = t->sport;
	ev->dport = t->dport;
	ev->ifindex = c->ifindex;
	ev->endpoint_id = t->endpoint_id;
	if (t->direction == BH_DIR_EGRESS) {
		ev->src_identity = c->local_identity;
		ev->dst_identity = c->remote_identity;
	} else {
		ev->src_identity = c->remote_identity;
		ev->dst_identity = c->local_identity;
	}
	ev->rule_id = c->rule_id;
	ev->reason = c->reason;
	ev->type = c->type;
	ev->verdict = c->verdict;
	ev->direction = t->direction;
	ev->protocol = t->protocol;
	ev->family = c->family;
	ev->is_reply = c->is_reply;
	if (c->ct) {
		ev->packets_fwd = c->ct->packets_fwd;
		ev->bytes_fwd = c->ct->bytes_fwd;
		ev->packets_rev = c->ct->packets_rev;
		ev->bytes_rev = c->ct->bytes_rev;
		ev->tcp_flags = c->ct->tcp_flags_fwd | c->ct->tcp_flags_rev;
	} else {
		ev->packets_fwd = 1;
		ev->bytes_fwd = 0;
		ev->packets_rev = 0;
		ev->bytes_rev = 0;
		ev->tcp_flags = c->tcp_flags;
	}
	__builtin_memset(ev->_pad, 0, sizeof(ev->_pad));
}

static __always_inline void bh_emit(const struct bh_event_ctx *c)
{
	struct bh_config *cfg = bh_get_config();
	if (cfg && (cfg->flags & BH_CFG_F_EVENTS_DISABLED)) {
		bh_stat_inc(BH_STAT_EVENTS_SUPPRESSED);
		return;
	}
	__u64 now = bpf_ktime_get_ns();
	__u32 carried;
	struct bh_event_budget *budget;
	if (!bh_event_budget_take(cfg, c->charge ? c->charge : c->tuple->saddr, now, &carried, &budget))
		return;
	struct bh_flow_event *ev = bpf_ringbuf_reserve(&bh_flows, sizeof(*ev), 0);
	if (!ev) {
		bh_stat_inc(BH_STAT_EVENTS_LOST);
		/* The count stays owed, for the source's next event. */
		if (budget && carried)
			__sync_fetch_and_add(&budget->suppressed, carried);
		return;
	}
	bh_fill_event(ev, c, now);
	ev->suppressed = carried;
	bpf_ringbuf_submit(ev, 0);
	bh_stat_inc(BH_STAT_EVENTS_SENT);
}

/* True at most once per tuple per interval: keeps a SYN flood from flooding the ring. */
static __always_inline int bh_deny_event_due(const struct bh_ct_key *tuple, __u64 now)
{
	struct bh_config *cfg = bh_get_config();
	__u64 interval = cfg && cfg->deny_event_interval_ns ? cfg->deny_event_interval_ns : BH_NS_PER_SEC;
	__u64 *last = bpf_map_lookup_elem(&bh_deny_ratelimit, tuple);
	if (last && now - *last < interval) {
		bh_stat_inc(BH_STAT_DENY_EVENTS_RATELIMITED);
		return 0;
	}
	bpf_map_update_elem(&bh_deny_ratelimit, tuple, &now, BPF_ANY);
	return 1;
}

#endif
