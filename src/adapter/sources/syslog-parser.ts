// Parses one syslog message, RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG`) or the BSD format
// of RFC 3164 (`<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`, with the variants real senders produce: no
// host, an RFC 3339 time), into the JSON payload `picket adapter` ships. Parsing never fails: what cannot
// be read is kept whole in `message`.

export interface SyslogRecord {
  format: 'rfc5424' | 'rfc3164' | 'unparsed';
  facility: number;
  facility_name: string;
  severity: number;
  severity_name: string;
  /** ISO-8601: as sent (RFC 5424) or rebuilt from the BSD time in local time (RFC 3164); null if none. */
  timestamp: string | null;
  hostname: string | null;
  app_name: string | null;
  procid: string | null;
  msgid: string | null;
  /** SD-ID → parameters; a parameter given more than once has every value, in order. */
  structured_data: Record<string, Record<string, string | string[]>>;
  message: string;
}

export interface ParsedSyslog {
  record: SyslogRecord;
  /** The message's own time, Unix ms, when it has one. */
  time: number | undefined;
}

export const FACILITY_NAMES = [
  'kern', 'user', 'mail', 'daemon', 'auth', 'syslog', 'lpr', 'news', 'uucp', 'cron', 'authpriv', 'ftp', 'ntp', 'security', 'console', 'solaris-cron',
  'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7',
] as const;
export const SEVERITY_NAMES = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'] as const;

/** RFC 3164 §4.3.3: a message without PRI is user.notice. */
const DEFAULT_PRI = 13;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const PRI_RE = /^<(\d{1,3})>/;
const BSD_TIME_RE = /^([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))? /;
const ISO_TIME_RE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?) /;
const TAG_RE = /^([^\s:[\]]{1,128})(?:\[([^\]\s]{0,128})\])?: ?/;

export function parseSyslog(input: string, now: Date = new Date()): ParsedSyslog {
  const text = input.replace(/[\r\n\0]+$/, '');
  const pri = PRI_RE.exec(text);
  if (!pri || Number(pri[1]) > 191) return { record: base('unparsed', DEFAULT_PRI, text), time: undefined };
  const value = Number(pri[1]);
  const rest = text.slice(pri[0].length);
  if (/^[1-9]\d? /.test(rest)) {
    const parsed = parse5424(value, rest);
    if (parsed) return parsed;
  }
  return parse3164(value, rest, now);
}

function base(format: SyslogRecord['format'], pri: number, message: string): SyslogRecord {
  const facility = pri >> 3;
  const severity = pri & 7;
  return {
    format, facility, facility_name: FACILITY_NAMES[facility] ?? String(facility), severity, severity_name: SEVERITY_NAMES[severity]!,
    timestamp: null, hostname: null, app_name: null, procid: null, msgid: null, structured_data: {}, message,
  };
}

const nil = (token: string): string | null => (token === '-' ? null : token);

function parse5424(pri: number, rest: string): ParsedSyslog | undefined {
  // VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, each followed by one space (the last maybe by the end).
  const tokens: string[] = [];
  let pos = 0;
  for (let i = 0; i < 6; i++) {
    const sp = rest.indexOf(' ', pos);
    const end = sp < 0 ? rest.length : sp;
    if (end === pos) return undefined;
    tokens.push(rest.slice(pos, end));
    pos = sp < 0 ? rest.length : sp + 1;
  }
  const [, timestamp, hostname, appName, procid, msgid] = tokens as [string, string, string, string, string, string];
  const record = base('rfc5424', pri, '');
  record.timestamp = nil(timestamp);
  record.hostname = nil(hostname);
  record.app_name = nil(appName);
  record.procid = nil(procid);
  record.msgid = nil(msgid);
  let time: number | undefined;
  if (record.timestamp !== null) {
    const t = Date.parse(record.timestamp);
    if (Number.isFinite(t)) time = t;
  }
  let msgStart = pos;
  if (rest[pos] === '-') {
    msgStart = pos + 1;
  } else if (rest[pos] === '[') {
    const sd = parseStructuredData(rest, pos);
    // Malformed structured data is left in the message rather than lost.
    if (sd) {
      record.structured_data = sd.elements;
      msgStart = sd.end;
    }
  }
  let message = rest.slice(msgStart);
  if (message.startsWith(' ')) message = message.slice(1);
  if (message.startsWith('\uFEFF')) message = message.slice(1);
  record.message = message;
  return { record, time };
}

function parseStructuredData(text: string, start: number): { elements: SyslogRecord['structured_data']; end: number } | undefined {
  const elements: SyslogRecord['structured_data'] = {};
  let pos = start;
  while (text[pos] === '[') {
    pos++;
    const idEnd = findAny(text, pos, ' ]');
    if (idEnd < 0 || idEnd === pos) return undefined;
    const id = text.slice(pos, idEnd);
    const params: Record<string, string | string[]> = elements[id] ?? {};
    pos = idEnd;
    while (text[pos] === ' ') {
      pos++;
      const eq = text.indexOf('=', pos);
      if (eq <= pos || text[eq + 1] !== '"') return undefined;
      const name = text.slice(pos, eq);
      pos = eq + 2;
      let value = '';
      for (;;) {
        const ch = text[pos];
        if (ch === undefined) return undefined;
        if (ch === '\\' && (text[pos + 1] === '"' || text[pos + 1] === '\\' || text[pos + 1] === ']')) {
          value += text[pos + 1];
          pos += 2;
        } else if (ch === '"') {
          pos++;
          break;
        } else {
          value += ch;
          pos++;
        }
      }
      const previous = params[name];
      params[name] = previous === undefined ? value : Array.isArray(previous) ? [...previous, value] : [previous, value];
    }
    if (text[pos] !== ']') return undefined;
    pos++;
    elements[id] = params;
  }
  return { elements, end: pos };
}

function findAny(text: string, from: number, chars: string): number {
  for (let i = from; i < text.length; i++) if (chars.includes(text[i]!)) return i;
  return -1;
}

function parse3164(pri: number, rest: string, now: Date): ParsedSyslog {
  const record = base('rfc3164', pri, rest);
  let pos = 0;
  let time: number | undefined;
  const bsd = BSD_TIME_RE.exec(rest);
  const iso = bsd ? null : ISO_TIME_RE.exec(rest);
  if (bsd) {
    time = bsdTime(bsd, now);
    pos = bsd[0].length;
  } else if (iso) {
    const t = Date.parse(iso[1]!);
    if (Number.isFinite(t)) time = t;
    pos = iso[0].length;
  }
  if (time !== undefined) record.timestamp = new Date(time).toISOString();
  let body = rest.slice(pos);
  // After a time comes the host, unless the sender left it out and went straight to the tag ("app[1]: ").
  if (time !== undefined) {
    const sp = body.indexOf(' ');
    const first = sp < 0 ? body : body.slice(0, sp);
    if (sp > 0 && !first.endsWith(':') && !first.includes('[')) {
      record.hostname = first;
      body = body.slice(sp + 1);
    }
  }
  const tag = TAG_RE.exec(body);
  if (tag) {
    record.app_name = tag[1]!;
    if (tag[2] !== undefined && tag[2] !== '') record.procid = tag[2];
    body = body.slice(tag[0].length);
  }
  record.message = body;
  return { record, time };
}

/** A BSD time has no year and no zone: local time, this year, or last year if that would be in the future. */
function bsdTime(m: RegExpExecArray, now: Date): number | undefined {
  const month = MONTHS.indexOf(m[1]!);
  if (month < 0) return undefined;
  const ms = m[6] ? Math.floor(Number(`0.${m[6]}`) * 1000) : 0;
  const at = (year: number): Date => new Date(year, month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), ms);
  let date = at(now.getFullYear());
  if (date.getTime() > now.getTime() + 24 * 3600 * 1000) date = at(now.getFullYear() - 1);
  return Number.isFinite(date.getTime()) ? date.getTime() : undefined;
}
