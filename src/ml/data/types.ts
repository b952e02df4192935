/**
 * One example format for every task and source (synthetic, Friends, TLiDB): a dialogue, the
 * item asked about, and the label. Task kinds follow TLiDB's Friends tasks.
 */

export type TaskKind =
  /** One class per example (emotion, character identification). */
  | 'single'
  /** Any subset of the classes (relation extraction, personality traits, topics). */
  | 'multi'
  /** One of the example's own candidates (reading comprehension). */
  | 'choice'
  /** A token span of the dialogue (question answering). */
  | 'span';

/** TLiDB's metrics; `label_accuracy` is accuracy over (example, label) pairs of a multi-label task. */
export type MetricName = 'accuracy' | 'f1_micro' | 'f1_macro' | 'f1_weighted' | 'exact_match' | 'token_f1' | 'multilabel_f1_micro' | 'label_accuracy';

export interface TaskInfo {
  name: string;
  kind: TaskKind;
  /** Class names for single/multi tasks. */
  labels?: string[];
  /** Classes that are not scored (TLiDB leaves some relation types out). */
  unscored?: number[];
  /**
   * Multi-label tasks whose every example has a label (DialogRE counts "unanswerable" as one):
   * decoding keeps the top class when no class passes 0.5, rather than predicting nothing.
   */
  atLeastOne?: boolean;
  /** The task's score is the mean of these, × 100. */
  metrics: MetricName[];
  description: string;
}

export interface Turn {
  speaker: string;
  text: string;
}

export interface Dialogue {
  id: string;
  turns: Turn[];
}

export interface Span {
  turn: number;
  /** Token indices (whitespace tokens of the turn's text), both inclusive. */
  start: number;
  end: number;
}

export interface Example {
  id: string;
  dialogue: string;
  /** The turn the example is about (emotion of this utterance, who says it, …). */
  focus?: number;
  /** Turns whose speaker is hidden from the model (character identification). */
  hideSpeaker?: boolean;
  /** The query, question, mention or argument pair. */
  item?: string;
  candidates?: string[];
  /** single: class index; multi: class indices; choice: candidate index; span: gold spans. */
  label: number | number[] | Span[];
}

export type Split = 'train' | 'dev' | 'test';
export const SPLITS: readonly Split[] = ['train', 'dev', 'test'];

export interface DatasetManifest {
  format: 1;
  source: string;
  tasks: Record<string, TaskInfo>;
  /** Examples per task and split. */
  counts: Record<string, Record<Split, number>>;
  dialogues: number;
  /** Dialogues in corpus.txt, the unlabelled pretraining text. */
  corpus?: number;
  /** How the data was made (seed, sizes, path), for the record. */
  provenance: Record<string, unknown>;
}
