"""About 115 of the commonest Chinese surnames, in simplified and traditional characters (158 in all).

A Chinese name is most often three characters, a surname and a two-character given name (王小明), and
most people carry one of a hundred or so surnames: China's household-register rankings put about 85%
of the population under its hundred commonest. Three Han characters are read as such a name only
when the first is one of these (model.reading), because read that way any three characters look
Chinese to the network, which learnt surnames only, and Japanese names of three characters (長谷川,
小野寺, 佐藤健) begin with characters that are rarely or never Chinese surnames.
"""

from __future__ import annotations

_SIMPLIFIED = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
# The traditional forms of those that have one (Taiwan, Hong Kong, Macau and most of the diaspora write these).
_TRADITIONAL = "張劉陳楊黃趙吳孫馬羅鄭謝許韓馮鄧蕭蔣葉蘇呂盧鍾鐘譚陸賈韋鄒閻閆龍賀顧龔萬錢嚴湯"
# Common surnames just outside that hundred, or common in Taiwan and Hong Kong, in both forms where they
# differ (洪 is about 14th in Taiwan; 莊, 簡, 游, 施, 顏, 柯, 翁, 詹 are in its fifty commonest).
_MORE = "洪赖賴阎萧傅庄莊简簡游施颜顏柯翁詹麦麥"

COMMON_CHINESE_SURNAMES = frozenset(_SIMPLIFIED + _TRADITIONAL + _MORE)
