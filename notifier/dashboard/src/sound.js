// Short tones made with Web Audio (no audio files): two rising notes for a
// new order, three low ones for a low rating. Browsers allow sound only
// after the user has interacted with the page; signing in counts.

let context = null;

const TUNES = {
  order: [[880, 0], [1175, 0.18]],
  low_rating: [[440, 0], [370, 0.22], [311, 0.44]],
  test: [[988, 0]],
};

export function chime(kind) {
  try {
    context = context || new AudioContext();
    if (context.state === 'suspended') context.resume();
    const now = context.currentTime;
    for (const [freq, at] of TUNES[kind] || TUNES.test) {
      const osc = context.createOscillator();
      const gain = context.createGain();
      osc.type = 'sine';
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, now + at);
      gain.gain.exponentialRampToValueAtTime(0.4, now + at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + at + 0.16);
      osc.connect(gain).connect(context.destination);
      osc.start(now + at);
      osc.stop(now + at + 0.18);
    }
  } catch {
    // No audio device: the visual alert is enough.
  }
}
