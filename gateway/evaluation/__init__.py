"""Evaluation of the screening (抽出方法の評価): figures, the transparent risk index, the report, and pooled counts."""
