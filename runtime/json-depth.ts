/**
 * A bound checked before parsing JSON: how deep its brackets nest (user JSON anywhere: the app's parsers, the local host);
 * and a parse error's message without the input it quotes.
 */

/** Deepest bracket/brace nesting of JSON text, outside strings; stops counting beyond `limit` (linear, no recursion). */
export function jsonNestingDepth(text: string, limit = Infinity): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x5d || c === 0x7d) depth = Math.max(0, depth - 1);
  }
  return max;
}

/**
 * V8's JSON syntax error without the piece of the input it quotes (`Unexpected token 's', ..."ary_key": supersecre"...
 * is not valid JSON`): the input may hold a key or a password, and an error never echoes it. The position stays.
 */
export function jsonSyntaxMessage(e: unknown): string {
  const m = String((e as Error | undefined)?.message ?? e).split('\n')[0];
  const quoting = /^(Unexpected (?:token|non-whitespace character after JSON))\b.*?,\s*(?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s.exec(m);
  if (quoting) return `${quoting[1]} (the text is not shown)`;
  // Other messages name a position, not the text ("Unterminated string in JSON at position 21"); a quote is cut anyway.
  return m.replace(/"[^]*$/, '(the text is not shown)').slice(0, 200);
}
