/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TC ingress on the pod's host-side interface: traffic FROM the pod.
 * This is where the pod's EGRESS policy is enforced.
 */
#include "lib/datapath.h"

SEC("classifier")
int bh_tc_from_pod(struct __sk_buff *skb)
{
	return bh_handle(skb, BH_DIR_EGRESS);
}

char _license[] SEC("license") = "GPL";
