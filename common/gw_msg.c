/* SPDX-License-Identifier: MIT */
/* gw_msg.c - bounds checks of a ring record before anyone reads its envelope (see gw_msg.h). */
#include "gw_msg.h"
#include "gw_error.h"

#include <string.h>

int gw_msg_decode(const uint8_t *rec, size_t n, struct gw_msg *hdr, const uint8_t **data)
{
    if (n < sizeof(*hdr))
        return GW_EBADMSG;
    memcpy(hdr, rec, sizeof(*hdr));
    if (hdr->kind == 0 || hdr->kind >= GW_MSG_KIND_MAX)
        return GW_EBADMSG;
    if (hdr->len != n - sizeof(*hdr) || hdr->len > GW_COAP_MAX_MSG + 16)
        return GW_EBADMSG;
    if (hdr->tkl > GW_COAP_MAX_TOKEN || hdr->security > GW_SEC_NETMGR)
        return GW_EBADMSG;
    if (hdr->ep.family != 0 && hdr->ep.family != 4 && hdr->ep.family != 6)
        return GW_EBADMSG;
    *data = rec + sizeof(*hdr);
    return 0;
}
