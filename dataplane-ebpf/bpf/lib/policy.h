/* SPDX-License-Identifier: Apache-2.0 */
/* Policy decision for the first packet of a connection. */
#ifndef BH_LIB_POLICY_H
#define BH_LIB_POLICY_H

#include "maps.h"

struct bh_decision {
	__u32 rule_id;
	__u16 reason;
	__u8 allowed; /* 1 = forward */
	__u8 _pad;
};

/* Remembers the first (most specific) allow and deny seen while collecting matches. */
struct bh_matches {
	__u32 allow_rule;
	__u32 deny_rule;
	__u8 has_allow;
	__u8 has_deny;
};

static __always_inline void bh_note(struct bh_matches *m, __u8 action, __u32 rule_id)
{
	if (action == BH_ACTION_DENY && !m->has_deny) {
		m->has_deny = 1;
		m->deny_rule = rule_id;
	} else if (action == BH_ACTION_ALLOW && !m->has_allow) {
		m->has_allow = 1;
		m->allow_rule = rule_id;
	}
}

static __always_inline void bh_match_exact(struct bh_matches *m, __u32 ep, __u32 id, __u8 dir,
					   __u8 proto, __u16 port)
{
	struct bh_policy_key key = {
		.endpoint_id = ep,
		.identity = id,
		.direction = dir,
		.protocol = proto,
		.port = port,
	};
	struct bh_policy_value *v = bpf_map_lookup_elem(&bh_policy, &key);
	if (v)
		bh_note(m, v->action, v->rule_id);
}

static __always_inline void bh_match_ranges(struct bh_matches *m, __u32 ep, __u32 id, __u8 dir,
					    __u8 proto, __u16 port)
{
	struct bh_range_key key = {
		.endpoint_id = ep,
		.identity = id,
		.direction = dir,
		.protocol = proto,
	};
	struct bh_range_value *v = bpf_map_lookup_elem(&bh_policy_ranges, &key);
	if (!v)
		return;
#pragma unroll
	for (int i = 0; i < BH_MAX_RANGES_PER_KEY; i++) {
		if (i >= v->count)
			break;
		if (port >= v->ranges[i].lo && port <= v->ranges[i].hi)
			bh_note(m, v->ranges[i].action, v->ranges[i].rule_id);
	}
}

/*
 * Policy precedence. Evaluated once, on the first packet of a connection;
 * quarantine was already checked before conntrack and overrides all of this.
 *
 *   1. Collect every entry that matches, in this order of specificity:
 *        for peer in (remote identity, any identity):
 *          (protocol, exact port) -> (protocol, port range) ->
 *          (protocol, any port)   -> (any protocol, any port)
 *      That is at most 8 hash lookups, whatever the number of rules.
 *   2. Any matching DENY drops. Deny wins over allow regardless of
 *      specificity; the most specific deny is the one reported.
 *   3. Otherwise any matching ALLOW forwards; the most specific is reported.
 *   4. Otherwise the direction's isolation decides, as in Kubernetes
 *      NetworkPolicy: an isolated direction drops (default deny), an
 *      unisolated one forwards.
 *
 * Port ranges are only consulted when the endpoint has any (BH_EP_F_HAS_RANGES).
 * Protocols without ports (ICMP) match only "any port" entries.
 */
static __always_inline struct bh_decision bh_policy_decide(const struct bh_endpoint *ep, __u32 remote_id,
							   __u8 dir, __u8 proto, __u16 port)
{
	struct bh_matches m = {};
	__u32 eid = ep->endpoint_id;
	int ranges = ep->flags & BH_EP_F_HAS_RANGES;
	__u8 has_ports = proto == BH_IPPROTO_TCP || proto == BH_IPPROTO_UDP || proto == BH_IPPROTO_SCTP;

	__u32 peers[2] = { remote_id, BH_ID_ANY };
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (i == 1 && remote_id == BH_ID_ANY)
			break;
		if (has_ports && port != 0) {
			bh_match_exact(&m, eid, peers[i], dir, proto, port);
			if (ranges)
				bh_match_ranges(&m, eid, peers[i], dir, proto, port);
		}
		bh_match_exact(&m, eid, peers[i], dir, proto, 0);
		bh_match_exact(&m, eid, peers[i], dir, 0, 0);
	}

	struct bh_decision d = {};
	if (m.has_deny) {
		d.rule_id = m.deny_rule;
		d.reason = BH_REASON_POLICY_DENY;
	} else if (m.has_allow) {
		d.allowed = 1;
		d.rule_id = m.allow_rule;
		d.reason = BH_REASON_ALLOWED_BY_RULE;
	} else if (ep->isolated[dir & 1]) {
		d.reason = BH_REASON_DEFAULT_DENY;
	} else {
		d.allowed = 1;
		d.reason = BH_REASON_NOT_ISOLATED;
	}
	return d;
}

#endif
