"""校務系 (school network) preset: 校務支援システム exports (CP932; 学籍番号, one-field 氏名, ふりがな, 和暦, 男/女, 出欠, 保健室来室, 健診).

The school network is usually unreachable from city hall and the agent pushes
to the gateway over HTTPS, or writes bundles when only a 中継サーバ crosses.
"""
