/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TC egress on the pod's host-side interface: traffic TO the pod.
 * This is where the pod's INGRESS policy is enforced.
 */
#include "lib/datapath.h"

SEC("classifier")
int bh_tc_to_pod(struct __sk_buff *skb)
{
	return bh_handle(skb, BH_DIR_INGRESS);
}

char _license[] SEC("license") = "GPL";
