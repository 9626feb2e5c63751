/**
 * Azure Functions HTTP route templates (`runs/{id}`, `models/{name?}/{version:int?}`, `files/{*path}`),
 * matched the way the Functions host does: literals case-insensitive, optional and catch-all
 * parameters, the common inline constraints (int, long, alpha, bool, guid, double).
 */
export interface CompiledRoute {
  template: string;
  regex: RegExp;
  params: string[];
  /** More literal characters = more specific; used to order matching. */
  specificity: number;
}

const CONSTRAINTS: Record<string, string> = {
  int: '-?\\d+',
  long: '-?\\d+',
  alpha: '[A-Za-z]+',
  bool: '(?:true|false|True|False)',
  guid: '[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}',
  double: '-?\\d+(?:\\.\\d+)?',
};

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function compileRoute(template: string): CompiledRoute {
  const clean = template.replace(/^\/+|\/+$/g, '');
  const params: string[] = [];
  let specificity = 0;
  let pattern = '^';
  const segments = clean === '' ? [] : clean.split('/');
  segments.forEach((segment, index) => {
    const optionalWhole = /^\{[^}]+\?\}$/.test(segment) || /^\{\*[^}]+\}$/.test(segment);
    let seg = '';
    let last = 0;
    const re = /\{([^}]+)\}/g;
    let m: RegExpExecArray | null;
    while ((m = re.exec(segment))) {
      const literal = segment.slice(last, m.index);
      seg += escapeRegex(literal);
      specificity += literal.length;
      last = m.index + m[0].length;
      let spec = m[1];
      const catchAll = spec.startsWith('*');
      if (catchAll) spec = spec.slice(1);
      const optional = spec.endsWith('?');
      if (optional) spec = spec.slice(0, -1);
      const [name, constraint] = spec.split(':');
      params.push(name);
      const body = catchAll ? '.*' : (constraint && CONSTRAINTS[constraint.replace(/\(.*$/, '')]) || '[^/]+';
      seg += `(?<${name.replace(/[^A-Za-z0-9_]/g, '_')}>${body})${optional ? '?' : ''}`;
    }
    const tail = segment.slice(last);
    seg += escapeRegex(tail);
    specificity += tail.length;
    const sep = index === 0 ? '' : '/';
    pattern += optionalWhole ? `(?:${sep}${seg})?` : `${sep}${seg}`;
  });
  pattern += '/?$';
  return { template, regex: new RegExp(pattern, 'i'), params, specificity };
}

export function matchRoute(route: CompiledRoute, path: string): Record<string, string> | undefined {
  const m = route.regex.exec(path.replace(/^\/+/, ''));
  if (!m) return undefined;
  const out: Record<string, string> = {};
  for (const name of route.params) {
    const v = m.groups?.[name.replace(/[^A-Za-z0-9_]/g, '_')];
    if (v !== undefined && v !== '') out[name] = safeDecode(v);
  }
  return out;
}

function safeDecode(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}
