/**
 * Plivo XML documents (protocol.md §1.1): parse to the ordered list of `<Response>`'s children.
 *
 * Safety: DTDs and entity declarations are refused outright (no expansion, no external entities);
 * only the five predefined entities and numeric references are decoded. Leniency: a bare `&` (one
 * SDK emits URLs unescaped) is escaped before validation. `fast-xml-parser`'s validator runs first
 * because its parser alone accepts malformed XML.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';

/** One element of a document, in document order. */
export interface XmlElement {
  /** Element name, case as written (names are case-sensitive). */
  name: string;
  /** Attributes as written (values unparsed). */
  attributes: Record<string, string>;
  /** Text content, trimmed (child elements ignored). */
  text: string;
}

/** Result of {@link parsePlivoXml}. */
export type XmlParseResult = { ok: true; elements: XmlElement[] } | { ok: false; error: string };

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  processEntities: true,
  htmlEntities: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
});

const BARE_AMPERSAND = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/g;

type Node = Record<string, unknown> & { ':@'?: Record<string, string> };

function textOf(children: Node[]): string {
  let t = '';
  for (const c of children) if (typeof c['#text'] === 'string') t += c['#text'];
  return t.trim();
}

/**
 * Parses a Plivo XML document. Never throws.
 * @returns the children of `<Response>` in order, or why the document is refused
 */
export function parsePlivoXml(xml: string): XmlParseResult {
  if (/<!DOCTYPE|<!ENTITY/i.test(xml))
    return { ok: false, error: 'DTDs and entity declarations are not allowed' };
  const text = xml.replace(BARE_AMPERSAND, '&amp;');
  const valid = XMLValidator.validate(text);
  if (valid !== true) return { ok: false, error: `malformed XML: ${valid.err.msg} (line ${valid.err.line})` };
  let doc: Node[];
  try {
    doc = parser.parse(text) as Node[];
  } catch (e) {
    return { ok: false, error: `malformed XML: ${(e as Error).message}` };
  }
  const roots = doc.filter((n) => Object.keys(n).some((k) => k !== ':@' && k !== '#text'));
  const root = roots[0];
  if (roots.length !== 1 || !root || !('Response' in root))
    return { ok: false, error: 'the root element must be <Response>' };
  const elements: XmlElement[] = [];
  for (const child of (root.Response as Node[]) ?? []) {
    const name = Object.keys(child).find((k) => k !== ':@' && k !== '#text');
    if (!name || name.startsWith('#')) continue;
    elements.push({
      name,
      attributes: { ...(child[':@'] ?? {}) },
      text: textOf((child[name] as Node[]) ?? []),
    });
  }
  return { ok: true, elements };
}
