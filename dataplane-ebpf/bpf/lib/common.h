/* SPDX-License-Identifier: Apache-2.0 */
/* Includes and small helpers every Bulkhead program uses. No libc headers: BPF has no libc. */
#ifndef BH_LIB_COMMON_H
#define BH_LIB_COMMON_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bulkhead_abi.h"

/* IP protocol numbers; linux/in.h would drag in libc headers. */
#define BH_IPPROTO_ICMP 1
#define BH_IPPROTO_TCP 6
#define BH_IPPROTO_UDP 17
#define BH_IPPROTO_ICMPV6 58
#define BH_IPPROTO_SCTP 132

#define BH_ETH_P_ARP 0x0806

#define BH_NS_PER_SEC 1000000000ULL

/* Pass without ending the TCX chain, so a CNI's own programs still run after ours. */
#define BH_TC_PASS TC_ACT_UNSPEC
#define BH_TC_DROP TC_ACT_SHOT

static __always_inline int bh_addr_eq(const __u8 *a, const __u8 *b)
{
	const __u64 *x = (const __u64 *)a;
	const __u64 *y = (const __u64 *)b;
	return x[0] == y[0] && x[1] == y[1];
}

#endif
