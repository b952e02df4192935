import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FRIENDS_TASKS, personaTurns } from '../src/ml/data/friends.js';
import { loadTlidb } from '../src/ml/data/tlidb.js';
import { SYNTHETIC_TASKS } from '../src/ml/data/synthetic.js';
import { FRIENDS_TASK_NAMES, SYNTHETIC_TASK_NAMES } from '../src/ml/data/task-names.js';
import type { Span, Split } from '../src/ml/data/types.js';
import { readDataset } from '../src/ml/data/dataset-io.js';
import { readTestScenes, shareSceneSplit, turnKey } from '../src/ml/data/scene-split.js';
import { dfwe, REPO, workspace, write } from './helpers.js';
import { untrainedModel } from './ml-helpers.js';
import { loadTf } from '../src/ml/tf.js';
import { evaluate, toVars } from '../src/ml/train.js';
import { buildVocab } from '../src/ml/vocab.js';

function put(dir: string, path: string, content: string | object): void {
  mkdirSync(join(dir, path, '..'), { recursive: true });
  writeFileSync(join(dir, path), typeof content === 'string' ? content : JSON.stringify(content));
}

const scene = (id: string, utts: object[]) => ({ scene_id: id, utterances: utts });

/** One small file per task, in each source's public format. */
function fixtures(): string {
  const d = mkdtempSync(join(tmpdir(), 'dfwe-friends-'));
  put(d, 'emory_emotion_recognition/emorynlp_train_final.csv',
    'Utterance,Speaker,Emotion,Scene_ID,Utterance_ID,Season,Episode,Start_Time,End_Time\n' +
    '"Hi, you.",[\'Monica Geller\'],Joyful,1,2,1,15,0,1\nCoffee.,"[\'Rachel Green\', \'Ross Geller\']",Neutral,1,1,1,15,0,1\n');
  const emoryJson = (id: string) => ({ season_id: 's01', episodes: [{ episode_id: 's01_e01', scenes: [scene(id, [
    { utterance_id: `${id}_u001`, speakers: ['Joey Tribbiani'], transcript: 'How you doin?', emotion: 'Powerful' },
    { utterance_id: `${id}_u002`, speakers: ['Ross Geller'], transcript: 'Hi.', emotion: 'Scared' },
  ])] }] });
  put(d, 'emory_emotion_recognition/emotion-detection-dev.json', emoryJson('s01_e20_c01'));
  put(d, 'emory_emotion_recognition/emotion-detection-tst.json', emoryJson('s01_e22_c01'));
  const meld = 'Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\r\n' +
    '1,"Oh my God, he’s lost it.",Phoebe,sadness,negative,0,0,4,7,"00:20:57,256","00:21:00,049"\r\n2,What?,Monica,surprise,negative,0,1,4,7,a,b\r\n';
  for (const s of ['train', 'dev', 'test']) put(d, `meld_emotion_recognition/${s}_sent_emo.csv`, meld);
  put(d, 'meld_emotion_recognition/meld_manual_mapping.json', { 'train-1': ['s04_e07_c05_u001'], 'train-2': ['s04_e07_c06_u000'], 'dev-1': [], 'test-1': ['s04_e08_c01_u000'] });
  put(d, 'feta_splits/feta_test_scene_ids.txt', 's01_e22_c01\ns02_e22_c01\ns01_e01_c05\n');
  const charId = (id: string) => ({ season_id: 's01', episodes: [{ episode_id: 'e', scenes: [scene(id, [
    { utterance_id: `${id}_u001`, speakers: ['Ross Geller'], transcript: 'I told mom', tokens: [['I', 'told', 'mom']], character_entities: [[[0, 1, 'Ross Geller'], [2, 3, 'Judy Geller']]] },
  ]), scene(`${id}x`, [{ utterance_id: `${id}x_u001`, speakers: ['Joey Tribbiani'], transcript: 'Hey you', tokens: [['Hey', 'you']], character_entities: [[[1, 2, 'Chandler Bing']]] }])] }] });
  put(d, 'character_identification/character-identification-dev.json', charId('s02_e20_c01'));
  put(d, 'character_identification/character-identification-tst.json', charId('s02_e22_c01'));
  const rc = [{ scene_id: 's01_e01_c04', query: '@placeholder builds furniture .', answer: '@ent00', utterances: [{ speakers: '@ent00', tokens: 'I have no brackety thing' }, { speakers: '@ent01', tokens: 'help @ent00 !' }] },
    { scene_id: 's01_e01_c05', query: '@placeholder laughs .', answer: '@ent01', utterances: [{ speakers: '@ent01', tokens: 'ha ha' }] }];
  put(d, 'reading_comprehension/reading-comprehension-dev.json', rc);
  put(d, 'reading_comprehension/reading-comprehension-tst.json', rc);
  const qa = { version: '2.0', data: [{ title: 's01_e01_c01', paragraphs: [{ 'utterances:': [{ uid: 0, speakers: ['Monica Geller'], utterance: 'There is nothing to tell !' }, { uid: 1, speakers: ['Joey Tribbiani'], utterance: 'C mon , you are going out with the guy !' }],
    qas: [{ id: 's01_e01_c01_What', question: 'What is Monica going out with ?', answers: [{ answer_text: 'the guy', utterance_id: 1, inner_start: 7, inner_end: 8, is_speaker: false }] },
      { id: 's01_e01_c01_Who', question: 'Who says nothing ?', answers: [{ answer_text: 'Monica Geller', utterance_id: 0, inner_start: -1, inner_end: -1, is_speaker: true }] }] }] }] };
  put(d, 'question_answering/friendsqa_dev.json', qa);
  put(d, 'question_answering/friendsqa_tst.json', qa);
  put(d, 'personality_detection/friends-personality.csv', ',scene_id,text,character,cAGR,cCON,cEXT,cOPN,cNEU\n' +
    '0,01_e01_c01,"<b>s01_e01_c01(1) for Joey Tribbiani</b><br><br><b>Ross Geller</b>: No!! Okay?!<br><br>(They all stare.)<br><br><b>Joey Tribbiani</b>: Alright.",Joey Tribbiani,1,0,1,0,0\n');
  const re = [[['Speaker 1: Hey!', 'Speaker 2: Hi, Ross.'], [{ x: 'Speaker 2', y: 'Ross', x_type: 'PER', y_type: 'PER', r: ['per:friends', 'per:alternate_names'], rid: [9, 30], t: ['', ''] }]]];
  for (const s of ['train', 'dev', 'test']) put(d, `relation_extraction/data_v2_en/${s}.json`, re);
  return d;
}

test('every Friends format loads from its public layout into one example format', () => {
  const d = fixtures();
  const load = (t: string) => FRIENDS_TASKS[t]!.load(d);
  const em = load('emory_emotion_recognition');
  assert.deepEqual(em.splits.train.map((e) => e.label), [2, 0]); // sorted by utterance id: Coffee (neutral), Hi (joyful)
  assert.equal(em.dialogues[0]!.turns[0]!.speaker, 'Rachel Green Ross Geller');
  assert.equal(em.dialogues[0]!.id, 's01_e15_c01');
  assert.deepEqual(em.splits.test.map((e) => e.label), [4, 6]);
  const meld = load('MELD_emotion_recognition');
  assert.deepEqual(meld.splits.train.map((e) => e.label), [5, 6]);
  assert.equal(meld.dialogues[0]!.turns[0]!.text, 'Oh my God, he’s lost it.');
  assert.deepEqual(meld.scenes!(meld.splits.train[0]!), ['s04_e07_c05', 's04_e07_c06'], 'a dialogue is in the scenes of its mapped rows');
  assert.deepEqual(meld.splits.dev.map((e) => meld.scenes!(e)), [[], []], 'a dialogue with no mapped row is in no scene');
  assert.deepEqual(meld.splits.test.map((e) => meld.scenes!(e)), [['s04_e08_c01'], ['s04_e08_c01']]);
  const ci = load('character_identification');
  assert.deepEqual(ci.splits.dev.map((e) => [e.item, e.label]).sort(), [['I', 5], ['mom', 6], ['you', 0]]);
  assert.equal(ci.splits.test.length, 3);
  assert.deepEqual(ci.scenes!(ci.splits.test[0]!), ['s02_e22_c01']);
  const rc = load('reading_comprehension');
  const q = rc.splits.dev.find((e) => e.item === '@placeholder builds furniture .')!;
  assert.deepEqual(q.candidates, ['@ent00', '@ent01']);
  assert.equal(q.label, 0);
  assert.deepEqual(rc.scenes!(q), ['s01_e01_c04']);
  const qa = load('question_answering');
  assert.equal(qa.splits.dev.length, 1, 'a question answered only by a speaker is left out');
  assert.deepEqual(qa.splits.dev[0]!.label as Span[], [{ turn: 1, start: 7, end: 8 }]);
  assert.deepEqual(qa.scenes!(qa.splits.dev[0]!), ['s01_e01_c01']);
  const pd = load('personality_detection');
  assert.deepEqual(pd.splits.train[0]!.label, [0, 2]);
  assert.equal(pd.splits.train[0]!.item, 'Joey Tribbiani');
  assert.deepEqual(pd.scenes!(pd.splits.train[0]!), ['s01_e01_c01'], 'the scene id gets its leading "s"');
  assert.deepEqual(pd.dialogues[0]!.turns, [{ speaker: 'Ross Geller', text: 'No!! Okay?!' }, { speaker: '', text: '(They all stare.)' }, { speaker: 'Joey Tribbiani', text: 'Alright.' }]);
  const re = load('relation_extraction');
  assert.deepEqual(re.splits.test[0]!.label, [8, 29]);
  assert.equal(re.splits.test[0]!.item, 'Speaker 2 ; Ross');
  assert.deepEqual(re.dialogues[0]!.turns[1], { speaker: 'Speaker 2', text: 'Hi, Ross.' });
  assert.equal(re.scenes, undefined, 'DialogRE has no scene ids');
});

test('a malformed file gives an error that names the file and the place', () => {
  const d = fixtures();
  writeFileSync(join(d, 'reading_comprehension/reading-comprehension-dev.json'), '[\n  {"scene_id": "s01",\n   "query": }\n]');
  assert.throws(() => FRIENDS_TASKS.reading_comprehension!.load(d), /reading-comprehension-dev\.json:3:\d+: not valid JSON/);
  writeFileSync(join(d, 'question_answering/friendsqa_dev.json'), JSON.stringify({ data: [{ title: 'x', paragraphs: [{ 'utterances:': [], qas: [{ id: 'q' }] }] }] }));
  assert.throws(() => FRIENDS_TASKS.question_answering!.load(d), /friendsqa_dev\.json: data\[0\]\.paragraphs\[0\]\.qas\[0\]: "answers" should be a list/);
  writeFileSync(join(d, 'meld_emotion_recognition/dev_sent_emo.csv'), 'Sr No.,Utterance,Speaker,Emotion,Dialogue_ID,Utterance_ID\n1,"unterminated,Phoebe,joy,0,0\n');
  assert.throws(() => FRIENDS_TASKS.MELD_emotion_recognition!.load(d), /dev_sent_emo\.csv:\d+: not valid CSV/);
  writeFileSync(join(d, 'emory_emotion_recognition/emorynlp_train_final.csv'), 'Utterance,Speaker,Emotion,Scene_ID,Utterance_ID,Season,Episode\nHi,[\'A\'],Ecstatic,1,1,1,1\n');
  assert.throws(() => FRIENDS_TASKS.emory_emotion_recognition!.load(d), /emorynlp_train_final\.csv: row 2: unknown emotion "ecstatic"/);
});

test('FriendsPersona HTML becomes speaker turns', () => {
  assert.deepEqual(personaTurns('<b>s01(1) for A</b><br><br><b>Ross</b>: a &amp; b<br /><br><i>(x)</i>'), [{ speaker: 'Ross', text: 'a & b' }, { speaker: '', text: '(x)' }]);
});

test("TLiDB's unified JSON loads, with its split files", () => {
  const d = mkdtempSync(join(tmpdir(), 'dfwe-tlidb-'));
  const file = join(d, 'TLiDB_Friends.json');
  const dialogue = (id: string) => ({
    dialogue_id: id,
    dialogue_metadata: { emotion_recognition: null, reading_comprehension: { scene_entities: ['Ross Geller', 'Rachel Green'] }, question_answering: null, personality_detection: null, relation_extraction: null, character_identification: null },
    dialogue: [
      { turn_id: 0, speakers: ['Ross Geller'], utterance: 'We were on a break !', emotion_recognition: 'Mad', character_identification: [{ entity_reference: 'We', start: 0, normalized_entity: 'Ross Geller' }] },
      { turn_id: 1, speakers: ['Rachel Green'], utterance: 'Oh , sure .', emotion_recognition: 'Neutral' },
    ],
    reading_comprehension: [{ query: '[PLACEHOLDER] says they were on a break', answer: 'Ross Geller' }],
    question_answering: [{ qas: [{ question: 'What were they on ?', answers: [{ text: 'a break', answer_start: 11, answer_utterance_id: 0, is_speaker: false }] }] }],
    personality_detection: [{ turns: [0, 1], focus_speaker: 'Ross Geller', personality_characteristics: { aggreeable: 0, conscientious: 1, extroverted: 0, open: 1, neurotic: 1 } }],
    relation_extraction: [{ turns: [0, 1], relation_triples: [{ head: 'Ross Geller', tail: 'Rachel Green', relations: ['per:girl/boyfriend'] }] }],
  });
  writeFileSync(file, JSON.stringify({ metadata: { dataset_name: 'Friends' }, data: [dialogue('s01_e01_c01'), dialogue('s01_e01_c02'), dialogue('s01_e01_c03')] }));
  writeFileSync(join(d, 'TTiDB_train_ids.txt'), 's01_e01_c01\ns01_e01_c02\n');
  writeFileSync(join(d, 'TTiDB_dev_ids.txt'), 's01_e01_c03\n');
  writeFileSync(join(d, 'TTiDB_test_ids.txt'), '');
  const t = loadTlidb(file, undefined, '0');
  const em = t.splits.emory_emotion_recognition!;
  assert.deepEqual([em.train.length, em.dev.length, em.test.length], [4, 2, 0]);
  assert.deepEqual(em.train.map((e) => e.label), [1, 2, 1, 2]);
  assert.deepEqual(t.splits.question_answering!.train[0]!.label, [{ turn: 0, start: 3, end: 4 }]);
  assert.equal(t.splits.reading_comprehension!.train[0]!.label, 0);
  assert.deepEqual(t.splits.personality_detection!.train[0]!.label, [1, 3, 4]);
  assert.deepEqual(t.splits.relation_extraction!.train[0]!.label, [9]);
  assert.deepEqual(t.splits.character_identification!.train[0]!.label, 5);
});

test('prepare-data reads the Friends files through its path; their content is part of its key', () => {
  const d = fixtures();
  const stage = `stages:\n  data:\n    uses: prepare-data\n    with: { source: friends, path: ${JSON.stringify(d)}, tasks: [relation_extraction, MELD_emotion_recognition] }\n`;
  // Outside the workspace: read only where the pipeline says so.
  const ws = workspace({ 'dfwe.yaml': `version: 1\n${stage}` });
  const undeclared = dfwe(ws, ['run']);
  assert.equal(undeclared.code, 2);
  assert.match(undeclared.stderr, /dfwe\.yaml:5:\d+: error: dependency ".*" of stage "data" lies outside the workspace, in no directory listed under read_only/);
  write(ws, 'dfwe.yaml', `version: 1\nread_only: [${JSON.stringify(d)}]\n${stage}`);
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(dfwe(ws, ['show', 'data']).stdout, /relation_extraction: 1 train, 1 dev, 1 test/);
  writeFileSync(join(d, 'relation_extraction/data_v2_en/test.json'), JSON.stringify([[['Speaker 1: Bye!'], [{ x: 'Speaker 1', y: 'Joey', rid: [1] }]]]));
  assert.match(dfwe(ws, ['why', 'data']).stdout, /data will run: dep .* changed/);
  const missing = workspace({ 'dfwe.yaml': 'version: 1\nread_only: [/no/such]\nstages:\n  data:\n    uses: prepare-data\n    with: { source: friends, path: /no/such/dir }\n' });
  const m = dfwe(missing, ['run']);
  assert.equal(m.code, 2);
  assert.match(m.stderr, /dfwe\.yaml:6:36: error: dependency "\/no\/such\/dir" of stage "data" does not exist and no stage produces it/);
});

test("the task names prepare-data offers are the generator's and the loaders' own", () => {
  assert.deepEqual([...SYNTHETIC_TASK_NAMES], SYNTHETIC_TASKS.map((t) => t.name));
  assert.deepEqual([...FRIENDS_TASK_NAMES].sort(), Object.keys(FRIENDS_TASKS).sort());
});

const FRIENDS_DATA = join(REPO, '..', 'shared', 'data', 'friends');

/** Every turn long enough to tell a dialogue apart, per split, over every task of a written dataset. */
function longTurns(data: string, split: Split): Map<string, string> {
  const ds = readDataset(data);
  const out = new Map<string, string>();
  for (const task of Object.keys(ds.manifest.tasks)) {
    for (const e of ds.examples(task, split)) for (const t of ds.dialogues.get(e.dialogue)!.turns) {
      const k = turnKey(t.text);
      if (k) out.set(k, `${task} ${e.id}`);
    }
  }
  return out;
}

test('the shared split: test scenes are test for every task, a train dialogue repeating a test turn is left out, DialogRE keeps its files', () => {
  const d = fixtures();
  const tasks = Object.values(FRIENDS_TASKS).map((t) => t.load(d));
  // Personality's conversation is the test scene s01_e01_c05's text under another scene id.
  const pd = tasks.find((t) => t.info.name === 'personality_detection')!;
  const rc = tasks.find((t) => t.info.name === 'reading_comprehension')!;
  rc.dialogues.find((x) => x.id === 'rc-dev-1')!.turns.push({ speaker: '@ent00', text: 'We were on a break , a real break !' });
  pd.dialogues[0]!.turns.push({ speaker: 'Ross Geller', text: 'We were on a break, a REAL break!' });
  const report = shareSceneSplit(tasks, readTestScenes(d), '0');
  const of = (name: string) => tasks.find((t) => t.info.name === name)!.splits;
  assert.deepEqual(of('emory_emotion_recognition').test.map((e) => e.dialogue), ['s01_e22_c01', 's01_e22_c01']);
  assert.equal(of('emory_emotion_recognition').train.length + of('emory_emotion_recognition').dev.length, 4, "the files' own test scene s01_e15 is not a FETA test scene: train or dev");
  assert.deepEqual(of('character_identification').test.map((e) => e.item), ['I', 'mom'], 'the test scene only, not the whole test file');
  assert.deepEqual(of('reading_comprehension').test.map((e) => e.dialogue), ['rc-dev-1', 'rc-test-1'], 'from both files, by scene');
  assert.equal(report.personality_detection!.repeatsTest, 1);
  assert.equal(pd.splits.train.length + pd.splits.dev.length, 0, 'its dialogue repeats a test turn');
  assert.equal(report.MELD_emotion_recognition!.unmapped, 2, 'MELD rows in no scene are left out');
  assert.deepEqual(Object.values(of('relation_extraction')).map((xs) => xs.length), [1, 1, 1]);
  assert.equal(report.relation_extraction!.by, 'files');
  // A scene's split is its own: loading one task alone puts its scenes where loading all did.
  const alone = [FRIENDS_TASKS.emory_emotion_recognition!.load(d)];
  shareSceneSplit(alone, readTestScenes(d), '0');
  assert.deepEqual(alone[0]!.splits, of('emory_emotion_recognition'));
  assert.throws(() => readTestScenes(join(d, 'nowhere')), /feta_test_scene_ids\.txt: cannot be read/);
  writeFileSync(join(d, 'feta_splits/feta_test_scene_ids.txt'), 's01_e22_c01\nscene 7\n');
  assert.throws(() => readTestScenes(d), /feta_test_scene_ids\.txt:2: "scene 7" is not a scene id/);
});

test('on the real Friends files, prepare-data leaves no test text in any task\'s train or dev set', { skip: !existsSync(FRIENDS_DATA) && 'needs ../shared/data/friends', timeout: 180_000 }, async () => {
  const ws = workspace({ 'dfwe.yaml': `version: 1\nread_only: [${JSON.stringify(FRIENDS_DATA)}]\nstages:\n  data:\n    uses: prepare-data\n    with: { source: friends, path: ${JSON.stringify(FRIENDS_DATA)}, few_shot: false }\n` });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  const data = join(ws, JSON.parse(dfwe(ws, ['show', '--json', 'data']).stdout).record.outputs.data.path as string);
  const test_ = longTurns(data, 'test');
  for (const split of ['train', 'dev'] as const) {
    for (const [turn, where] of longTurns(data, split)) assert.ok(!test_.has(turn), `${split} ${where} repeats "${turn}" of test ${test_.get(turn)}`);
  }
  const ds = readDataset(data);
  const split = ds.manifest.provenance.split as { test_scenes: number; tasks: Record<string, { by: string; test: number }> };
  assert.equal(split.test_scenes, 433);
  for (const [task, c] of Object.entries(ds.manifest.counts)) {
    assert.ok(c.train > 0 && c.dev > 0 && c.test > 0, `${task}: ${JSON.stringify(c)}`);
    assert.equal(split.tasks[task]!.by, task === 'relation_extraction' ? 'files' : 'scenes');
  }
  // FETA's test scenes for personality hold 110 conversations (550 trait instances in its test set).
  assert.equal(ds.manifest.counts.personality_detection!.test, 110);
  // Every task's dev loss is finite (QA's was NaN: no batch had every answer inside 128 tokens).
  const tf = await loadTf('wasm');
  const vocab = buildVocab(ds, 4000, 2);
  const m = untrainedModel(ds, vocab, 128);
  const vars = toVars(tf, m.weights);
  for (const task of Object.keys(ds.manifest.tasks)) {
    const loss = evaluate(tf, m.cfg, vars, ds, vocab, task, 'dev').loss;
    assert.ok(Number.isFinite(loss), `${task}: dev loss ${loss}`);
  }
  vars.forEach((v) => v.dispose());
});
