import type { Dialogue, Example, Span } from './data/types.js';
import { CLS, HIDDEN, id, PAD, SEP, tokenize, TURN, type Vocab } from './vocab.js';

/*
 * An example as fixed-length arrays. Every position carries its token, the speaker of its turn,
 * and three flags: in the focus turn; the token occurs in the item; the turn's speaker is named
 * in the item. One encoder reads them all, and each task kind pools what it needs: the focus
 * turn (emotion, who speaks), the named character's turns (personality), each candidate's
 * turns (reading comprehension), or every position (span extraction). Models with item heads
 * (model.ts) also read where the item sits, where each argument of a pair is, and where a
 * candidate is named.
 */

export interface Encoded {
  tokens: Int32Array;
  speakers: Int32Array;
  focus: Float32Array;
  itemMatch: Float32Array;
  speakerMatch: Float32Array;
  /** 1 where a token of a dialogue turn sits (spans may only start and end there). */
  dialogueMask: Float32Array;
  /** Per position: turn index and token index in the turn's text, or -1. */
  turnOf: Int32Array;
  wordOf: Int32Array;
  /** For choice tasks: per candidate, 1 where its turns are (and, with `mentions`, where it is named). */
  candidateMasks: Float32Array[];
  /** 1 where a token of the item (question, query, mention, argument pair) sits. */
  itemMask: Float32Array;
  /**
   * For an item that is an argument pair "x ; y" (relation extraction): 1 where x (y) is named
   * in the dialogue or speaks, so the two arguments are told apart.
   */
  pairX: Float32Array;
  pairY: Float32Array;
}

/** `mentions`: a candidate's positions include the tokens that name it, not only its turns. */
export function encode(e: Example, d: Dialogue, v: Vocab, maxLen: number, mentions = false): Encoded {
  const itemTokens = tokenize(e.item ?? '');
  const itemSet = new Set(itemTokens);
  const turnTokens = d.turns.map((t) => t.text.split(' ').flatMap((w, wi) => tokenize(w).map((tok) => ({ tok, wi }))));
  const speakerTok = d.turns.map((t) => tokenize(t.speaker).join('_'));
  // A speaker is named in the item when every word of the name is there ("joey tribbiani").
  const speakerNamed = d.turns.map((t) => {
    const words = tokenize(t.speaker);
    return words.length > 0 && words.every((w) => itemSet.has(w));
  });
  const head = [CLS, ...itemTokens.map((t) => id(v, t)), SEP];
  const budget = Math.max(0, maxLen - head.length);
  const cost = (i: number): number => 2 + turnTokens[i]!.length;

  // Which turns fit: grow a window around the turn the example is about.
  const anchor = anchorTurn(e, d, turnTokens, itemSet);
  let lo = anchor;
  let hi = anchor;
  let used = d.turns.length ? cost(anchor) : 0;
  while (true) {
    const canLeft = lo > 0 && used + cost(lo - 1) <= budget;
    const canRight = hi < d.turns.length - 1 && used + cost(hi + 1) <= budget;
    if (!canLeft && !canRight) break;
    if (canRight && (hi - anchor <= anchor - lo || !canLeft)) used += cost(++hi);
    else used += cost(--lo);
  }

  const n = maxLen;
  const out: Encoded = {
    tokens: new Int32Array(n), speakers: new Int32Array(n), focus: new Float32Array(n), itemMatch: new Float32Array(n),
    speakerMatch: new Float32Array(n), dialogueMask: new Float32Array(n), turnOf: new Int32Array(n).fill(-1), wordOf: new Int32Array(n).fill(-1),
    candidateMasks: [], itemMask: new Float32Array(n), pairX: new Float32Array(n), pairY: new Float32Array(n),
  };
  const pair = (e.item ?? '').split(' ; ');
  const xName = pair.length === 2 ? tokenize(pair[0]!) : [];
  const yName = pair.length === 2 ? tokenize(pair[1]!) : [];
  const xSet = new Set(xName);
  const ySet = new Set(yName);
  let p = 0;
  for (const [i, t] of head.entries()) {
    if (p >= n) break;
    if (i > 0 && i < head.length - 1) out.itemMask[p] = 1;
    out.tokens[p++] = t;
  }
  const candTokens = (e.candidates ?? []).map((c) => tokenize(c).join('_'));
  out.candidateMasks = candTokens.map(() => new Float32Array(n));
  for (let ti = lo; ti <= hi && d.turns.length; ti++) {
    const hidden = e.hideSpeaker && ti === e.focus;
    const spk = hidden ? HIDDEN : id(v, speakerTok[ti]!);
    const isFocus = ti === e.focus ? 1 : 0;
    const named = !hidden && speakerNamed[ti] ? 1 : 0;
    const spkWords = tokenize(d.turns[ti]!.speaker).join(' ');
    const speaksX = xName.length > 0 && spkWords === xName.join(' ');
    const speaksY = yName.length > 0 && spkWords === yName.join(' ');
    const place = (tok: number, word: number, inText: boolean, text = ''): void => {
      if (p >= n) return;
      out.tokens[p] = tok;
      out.speakers[p] = spk;
      out.focus[p] = isFocus;
      out.speakerMatch[p] = named;
      if (speaksX || (inText && xSet.has(text))) out.pairX[p] = 1;
      if (speaksY || (inText && ySet.has(text))) out.pairY[p] = 1;
      if (inText) {
        out.dialogueMask[p] = 1;
        out.turnOf[p] = ti;
        out.wordOf[p] = word;
        out.itemMatch[p] = itemSet.has(v.tokens[tok] ?? '') ? 1 : 0;
      }
      candTokens.forEach((c, ci) => {
        if ((!hidden && c === speakerTok[ti]) || (mentions && inText && c === text)) out.candidateMasks[ci]![p] = 1;
      });
      p++;
    };
    place(TURN, -1, false);
    place(spk, -1, false);
    for (const { tok, wi } of turnTokens[ti]!) place(id(v, tok), wi, true, tok);
  }
  for (; p < n; p++) out.tokens[p] = PAD;
  return out;
}

function anchorTurn(e: Example, d: Dialogue, turns: { tok: string }[][], itemSet: Set<string>): number {
  if (d.turns.length === 0) return 0;
  if (e.focus !== undefined) return Math.min(e.focus, d.turns.length - 1);
  // Never the gold answer's turn: that would leak the label into test inputs.
  let best = 0;
  let bestHits = -1;
  turns.forEach((toks, i) => {
    const hits = toks.filter((t) => itemSet.has(t.tok)).length;
    if (hits > bestHits) {
      best = i;
      bestHits = hits;
    }
  });
  return best;
}

/** The gold span as positions in the encoding (first gold span that survived truncation). */
export function spanPositions(enc: Encoded, spans: Span[]): [number, number] | undefined {
  for (const s of spans) {
    let start = -1;
    let end = -1;
    for (let p = 0; p < enc.turnOf.length; p++) {
      if (enc.turnOf[p] !== s.turn) continue;
      const w = enc.wordOf[p]!;
      if (w >= s.start && w <= s.end) {
        if (start < 0) start = p;
        end = p;
      }
    }
    if (start >= 0) return [start, end];
  }
  return undefined;
}

/** The text a predicted span covers, as the dialogue's own words. */
export function spanText(enc: Encoded, d: Dialogue, start: number, end: number): string {
  const turn = enc.turnOf[start]!;
  if (turn < 0 || enc.turnOf[end] !== turn) return '';
  const words = d.turns[turn]!.text.split(' ');
  return words.slice(enc.wordOf[start]!, enc.wordOf[end]! + 1).join(' ');
}
