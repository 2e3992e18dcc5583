"""judge: decide on evidence it is handed, never fetch it.

`aggregate` takes every signal's outcome and gives one verdict, worst-of PASS < INCONCLUSIVE < NODATA < ERROR <
FAIL over voting signals (dry-run signals are shown, never counted), with the reason in one line; a failing
critical signal is flagged so the controller may act before the stage minimum. `signal_alphas` splits the gate's
false-alarm budget over its signals. The scoring modes for teams migrating from Kayenta and Keptn score values
fetched for them: `kayenta.score_gate` (per-step series, as Kayenta's NetflixACAJudge receives metric pairs) and
`keptn.score_gate` (one value per arm). Fetching is `gatekeeper.evaluation`'s job.

Must not: import anything of ours but `spec` and `stats`; fetch, act, or read the wall clock.
"""

from gatekeeper.judge.aggregate import Judgement, aggregate
from gatekeeper.judge.alphas import signal_alphas

__all__ = ["Judgement", "aggregate", "signal_alphas"]
