/*
 * LD_PRELOAD shim for benchmarking Janus on a loopback-only machine.
 *
 * Janus 1.1.2 skips every interface flagged IFF_LOOPBACK when it gathers ICE candidates, so on a
 * machine whose only usable address is 127.0.0.1 it offers no candidate at all. This library
 * wraps getifaddrs() and clears IFF_LOOPBACK on the interface named "lo", so Janus gathers a
 * 127.0.0.1 host candidate. Nothing else changes: sockets, packets and Janus's media path are
 * untouched, and the flag is cleared only in the list handed to the caller.
 *
 * Build: gcc -shared -fPIC -O2 -o libloopback_ifaddrs.so loopback_ifaddrs.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stddef.h>
#include <string.h>

typedef int (*getifaddrs_fn)(struct ifaddrs **);

int getifaddrs(struct ifaddrs **list)
{
    static getifaddrs_fn real_getifaddrs;
    if (real_getifaddrs == NULL) {
        real_getifaddrs = (getifaddrs_fn)dlsym(RTLD_NEXT, "getifaddrs");
        if (real_getifaddrs == NULL) {
            return -1;
        }
    }
    int result = real_getifaddrs(list);
    if (result != 0 || list == NULL) {
        return result;
    }
    for (struct ifaddrs *entry = *list; entry != NULL; entry = entry->ifa_next) {
        if (entry->ifa_name != NULL && strcmp(entry->ifa_name, "lo") == 0) {
            entry->ifa_flags &= ~(unsigned int)IFF_LOOPBACK;
        }
    }
    return result;
}
