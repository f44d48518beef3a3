/* SPDX-License-Identifier: Apache-2.0 */
/*
 * XDP on the pod's host-side interface: the fast drop of everything a
 * quarantined pod sends, before an skb is even allocated. TC enforces the
 * same quarantine (both ways) on its own; this program only makes the drop
 * cheap when a compromised pod floods.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/stats.h"

SEC("xdp")
int bh_xdp_quarantine(struct xdp_md *ctx)
{
	__u32 ifindex = ctx->ingress_ifindex;
	struct bh_endpoint *ep = bpf_map_lookup_elem(&bh_endpoints, &ifindex);
	if (!ep)
		return XDP_PASS;
	__u32 eid = ep->endpoint_id;
	if (!bh_quarantined(eid))
		return XDP_PASS;
	bh_stat_inc(BH_STAT_XDP_QUARANTINE_DROPS);
	bh_stat_drop(BH_REASON_QUARANTINE);
	return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
