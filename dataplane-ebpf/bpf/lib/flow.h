/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Flow events: one per new connection, per denied attempt (rate-limited per
 * tuple), per close and per periodic counter export. Never one per packet.
 * A reservation that fails because the ring is full is counted, never silent.
 */
#ifndef BH_LIB_FLOW_H
#define BH_LIB_FLOW_H

#include "maps.h"
#include "stats.h"

struct bh_event_ctx {
	const struct bh_ct_key *tuple; /* original direction of the connection */
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

static __always_inline void bh_emit(const struct bh_event_ctx *c)
{
	struct bh_config *cfg = bh_get_config();
	if (cfg && (cfg->flags & BH_CFG_F_EVENTS_DISABLED)) {
		bh_stat_inc(BH_STAT_EVENTS_SUPPRESSED);
		return;
	}
	struct bh_flow_event *ev = bpf_ringbuf_reserve(&bh_flows, sizeof(*ev), 0);
	if (!ev) {
		bh_stat_inc(BH_STAT_EVENTS_LOST);
		return;
	}
	const struct bh_ct_key *t = c->tuple;
	ev->ts_ns = bpf_ktime_get_ns();
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
