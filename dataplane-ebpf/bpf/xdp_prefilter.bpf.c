/* SPDX-License-Identifier: Apache-2.0 */
/*
 * XDP on the node's own uplink: the block list's prefilter. A packet whose
 * source is blocked is dropped before the node allocates an skb for it,
 * before kube-proxy's DNAT and SNAT hide the client's address, and before
 * any other Bulkhead program. Everything else passes untouched; the pods'
 * TC programs still check both addresses of every new connection, which
 * covers pod-to-pod traffic and what pods send out.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/stats.h"

/* The source address of an IPv4 or IPv6 packet, IPv4 mapped; 0 when it is neither. */
static __always_inline int bh_prefilter_source(__u8 *addr, void *data, void *data_end)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return 0;
	__u16 proto = eth->h_proto;
	void *l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		/* one VLAN tag: TCI (2) then the inner ethertype (2) */
		__u16 *inner = l3 + 2;
		if ((void *)(inner + 1) > data_end)
			return 0;
		proto = *inner;
		l3 += 4;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > data_end)
			return 0;
		__builtin_memset(addr, 0, 10);
		addr[10] = 0xff;
		addr[11] = 0xff;
		__builtin_memcpy(addr + 12, &ip->saddr, 4);
		return 1;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > data_end)
			return 0;
		__builtin_memcpy(addr, &ip6->saddr, 16);
		return 1;
	}
	return 0;
}

SEC("xdp")
int bh_xdp_prefilter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 addr[16];
	if (!bh_prefilter_source(addr, data, data_end) || !bh_blocked(addr))
		return XDP_PASS;
	bh_stat_inc(BH_STAT_PREFILTER_DROPS);
	bh_stat_drop(BH_REASON_BLOCKED);
	return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
