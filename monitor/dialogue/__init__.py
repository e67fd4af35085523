"""The yearly work of a DREETS: CPOM objectives and their attainment, the agrément dialogue
dossier, and the control programme. Read models and service calls over the store, the alerts
and the other read models; the scoring and the attainment rules are pure modules."""
