"""setfix: learning set functions from an optimal-subset oracle by mean-field
variational inference with implicit differentiation."""

import importlib.metadata

from . import datasets as datasets, experiments as experiments
from ._adjoints import OneStep as OneStep, Unrolled as Unrolled
from ._anderson import AndersonAcceleration as AndersonAcceleration
from ._attention import AttentionSet as AttentionSet, InducedAttention as InducedAttention
from ._checkpoint import load_checkpoint as load_checkpoint, save_checkpoint as save_checkpoint
from ._contextual import AbstractContextualSetFunction as AbstractContextualSetFunction
from ._cross_validation import cross_validate as cross_validate
from ._dataset import concatenate as concatenate, SetDataset as SetDataset
from ._diagnostics import (
    AbstractDiagnostic as AbstractDiagnostic,
    ContractionEstimate as ContractionEstimate,
    ResidualTrace as ResidualTrace,
)
from ._elbo import EquiVSetELBO as EquiVSetELBO
from ._encoders import (
    AbstractEncoder as AbstractEncoder,
    CNNEncoder as CNNEncoder,
    MLPEncoder as MLPEncoder,
)
from ._equivset import EquiVSet as EquiVSet
from ._estimator import AbstractEstimator as AbstractEstimator
from ._exact import Exact as Exact
from ._expected_jaccard import (
    expected_jaccard_of_prefixes as expected_jaccard_of_prefixes,
    predict_expected_jaccard as predict_expected_jaccard,
)
from ._fit import (
    default_optimizer as default_optimizer,
    DivergenceError as DivergenceError,
    evaluate as evaluate,
    fit as fit,
    FitResult as FitResult,
)
from ._forms import (
    AbstractForm as AbstractForm,
    FixedPointForm as FixedPointForm,
    LogitRootForm as LogitRootForm,
)
from ._hessian import (
    AbstractHessianRule as AbstractHessianRule,
    PairwiseHessian as PairwiseHessian,
    ScoreHessian as ScoreHessian,
    ZeroHessian as ZeroHessian,
)
from ._losses import (
    mean_field_nll as mean_field_nll,
    mean_field_nll_from_logits as mean_field_nll_from_logits,
    sample_negatives as sample_negatives,
)
from ._mean_field import (
    fixed_point_map as fixed_point_map,
    MeanField as MeanField,
    residual as residual,
)
from ._mean_field_steps import MeanFieldSteps as MeanFieldSteps
from ._method import AbstractMethod as AbstractMethod
from ._methods import (
    diffmf as diffmf,
    equivset_copula as equivset_copula,
    equivset_ind as equivset_ind,
    idiffmf as idiffmf,
    onestep as onestep,
    reference_prediction as reference_prediction,
)
from ._metrics import (
    brier_score as brier_score,
    calibration_bins as calibration_bins,
    expected_calibration_error as expected_calibration_error,
    jaccard as jaccard,
    predict as predict,
    predict_size as predict_size,
    predict_threshold as predict_threshold,
    size_error as size_error,
)
from ._monte_carlo import MonteCarlo as MonteCarlo
from ._objective import AbstractObjective as AbstractObjective, MeanFieldNLL as MeanFieldNLL
from ._pooled_items import PooledItems as PooledItems
from ._problem import MeanFieldProblem as MeanFieldProblem
from ._recognition import (
    AmortizedSetFunction as AmortizedSetFunction,
    RecognitionNetwork as RecognitionNetwork,
)
from ._relaxed_noise import (
    AbstractRelaxedNoise as AbstractRelaxedNoise,
    CopulaNoise as CopulaNoise,
    IndependentNoise as IndependentNoise,
)
from ._scaling import (
    AbstractScaling as AbstractScaling,
    BatchNormScaling as BatchNormScaling,
    CertifiedScaling as CertifiedScaling,
    ConstantScaling as ConstantScaling,
    NormScaling as NormScaling,
    NoScaling as NoScaling,
)
from ._set_function import (
    AbstractPooledSetFunction as AbstractPooledSetFunction,
    AbstractSetFunction as AbstractSetFunction,
    DeepSet as DeepSet,
    TableSetFunction as TableSetFunction,
)
from ._sharding import DataParallel as DataParallel
from ._solution import (
    mean_over_converged as mean_over_converged,
    MeanFieldSolution as MeanFieldSolution,
)
from ._superset import SupersetDeepSet as SupersetDeepSet
from ._theory import (
    assumption_4_1 as assumption_4_1,
    interaction_certificate as interaction_certificate,
    iteration_bound as iteration_bound,
    lipschitz_estimate as lipschitz_estimate,
)


try:
    __version__ = importlib.metadata.version("setfix")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover
    __version__ = "0.0.0"
