import { lookup } from 'node:dns/promises';
import type { LookupFunction } from 'node:net';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { ApiError } from '../common/problem';

export interface WebhookUrlRules {
  production: boolean;
  allowPrivate: boolean;
}

/** Whether an address is on the public internet (not loopback, private, link-local, metadata…). */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  let ip = ipaddr.parse(address);
  // An IPv4 address written as IPv6 (::ffff:10.0.0.1) is judged as the IPv4 address it is.
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress())
    ip = (ip as ipaddr.IPv6).toIPv4Address();
  return ip.range() === 'unicast';
}

const refused = (detail: string) => new ApiError(422, 'webhook_url_refused', detail);

/**
 * Checks a webhook URL when an admin registers it: http(s) only, https in production, no
 * credentials in it, and (unless WEBHOOK_ALLOW_PRIVATE) a host whose every address is public, so
 * the service cannot be pointed at itself, the cluster or the cloud metadata endpoint. The same
 * address rule holds again at every connection (`guardedLookup`), against DNS that changes later.
 */
export async function checkWebhookUrl(raw: string, rules: WebhookUrlRules): Promise<URL> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw refused('The URL is not a valid absolute URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw refused('The URL must be http or https');
  if (rules.production && url.protocol !== 'https:') throw refused('The URL must be https');
  if (url.username || url.password) throw refused('The URL must not carry credentials');
  if (rules.allowPrivate) return url;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host)
    ? [host]
    : await lookup(host, { all: true }).then(
        (all) => all.map((a) => a.address),
        () => {
          throw refused('The URL’s host does not resolve');
        },
      );
  if (!addresses.length || !addresses.every(isPublicAddress))
    throw refused('The URL points at a private, loopback or reserved address');
  return url;
}

/**
 * A DNS lookup for the delivery agent that refuses non-public addresses (unless allowed), so a
 * host that resolved to a public address at registration cannot be re-pointed inside later.
 */
export function guardedLookup(allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    lookup(hostname, { ...options, all: true }).then(
      (all) => {
        const ok = allowPrivate ? all : all.filter((a) => isPublicAddress(a.address));
        if (!ok.length) {
          callback(
            Object.assign(new Error(`refused address for ${hostname}`), { code: 'EPERM' }),
            '',
            0,
          );
          return;
        }
        if ((options as { all?: boolean }).all) callback(null, ok);
        else callback(null, ok[0].address, ok[0].family);
      },
      (err: NodeJS.ErrnoException) => callback(err, '', 0),
    );
  };
}
