/*
 * The tasks prepare-data can build, by name: what a pipeline may ask for. Kept apart from the
 * generator and the loaders (synthetic.ts, friends.ts) so that planning a pipeline loads neither;
 * a test checks that these lists are the loaders' own.
 */

export const SYNTHETIC_TASK_NAMES = ['emotion', 'sentiment', 'speaker', 'personality', 'topic', 'reading', 'qa'] as const;

export const FRIENDS_TASK_NAMES = [
  'emory_emotion_recognition',
  'MELD_emotion_recognition',
  'character_identification',
  'reading_comprehension',
  'question_answering',
  'personality_detection',
  'relation_extraction',
] as const;
