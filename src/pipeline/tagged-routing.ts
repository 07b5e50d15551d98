// A sensor's routing template together with when its tags expire: what an event gets at `now` no longer
// carries a tag whose expiry has passed (as the API stops listing it), without a store read or a timer
// per sensor. Sensor sessions and cloud adapters route their events through one of these.
import type { TagState } from '../domain/records.js';
import type { RoutingTemplate } from './envelope.js';

export class TaggedRouting {
  private template: RoutingTemplate;
  /** Expiry (ms) of the tags that have one (API tags given a ttl); null while none has. */
  private expiry: Map<string, number> | null = null;
  /** The earliest of `expiry`: from then on, events are routed without the tags that expired. */
  private expiresAt = Number.POSITIVE_INFINITY;

  /** `template`'s own tags are replaced by `tags`. */
  constructor(template: RoutingTemplate, tags: ReadonlyArray<TagState>) {
    this.template = template.withTags(this.keep(tags));
  }

  /** The sensor's tags changed (the API, or a refresh from the store). */
  setTags(tags: ReadonlyArray<TagState>): void {
    this.template = this.template.withTags(this.keep(tags));
  }

  /** The routing for what happens at `now`. */
  at(now: number): RoutingTemplate {
    if (now < this.expiresAt) return this.template;
    const expiry = this.expiry;
    const kept = this.template.routing.tags.filter((tag) => !((expiry?.get(tag) ?? Number.POSITIVE_INFINITY) <= now));
    this.setTags(kept.map((tag) => ({ tag, expires: expiry?.get(tag) ?? null })));
    return this.template;
  }

  /** Remembers which of the tags expire when, and returns their names. */
  private keep(tags: ReadonlyArray<TagState>): string[] {
    let expiry: Map<string, number> | null = null;
    let next = Number.POSITIVE_INFINITY;
    for (const t of tags) {
      if (t.expires === null) continue;
      (expiry ??= new Map()).set(t.tag, t.expires);
      if (t.expires < next) next = t.expires;
    }
    this.expiry = expiry;
    this.expiresAt = next;
    return tags.map((t) => t.tag);
  }
}
